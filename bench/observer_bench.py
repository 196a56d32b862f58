"""What the stream observer costs per stream, in process: a 50-event OpenAI-compatible chat
stream relayed through ``core.responses.observed`` (event alignment, the end-marker scan, the
byte count) against the same chunks iterated bare, both as 50 reads of one event and as one
read holding all 50. Interleaved rounds, the fastest of each; figures only.

Usage: python bench/observer_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgerelay.core.http import Response
from edgerelay.core.responses import observed

STREAMS = 200


def events() -> list[bytes]:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4.1-mini",
        "choices": [{"index": 0, "delta": {"content": "word "}, "finish_reason": None}],
    }
    out = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for _ in range(49)]
    last = {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    return [*out, b"data: " + json.dumps(last).encode() + b"\n\ndata: [DONE]\n\n"]


async def chunks(reads: list[bytes]):
    for read in reads:
        yield read


async def relay(reads: list[bytes], watched: bool) -> int:
    response = Response(200, [("content-type", "text/event-stream")], stream=chunks(reads))
    if watched:
        observed(response, "chat")
    sent = 0
    assert response.stream is not None
    async for out in response.stream:
        sent += len(out)
    await response.aclose()
    return sent


async def per_stream_us(reads: list[bytes], watched: bool) -> float:
    start = time.perf_counter()
    for _ in range(STREAMS):
        await relay(reads, watched)
    return (time.perf_counter() - start) / STREAMS * 1e6


async def main(rounds: int) -> None:
    separate = events()
    together = [b"".join(separate)]
    assert await relay(separate, True) == await relay(separate, False)
    print(f"stream observer: 50-event chat stream, fastest of {rounds} rounds of {STREAMS}")
    for label, reads in (("50 reads of one event", separate), ("one read of 50 events", together)):
        bare, watched = [], []
        for _ in range(rounds):
            bare.append(await per_stream_us(reads, False))
            watched.append(await per_stream_us(reads, True))
        print(
            f"  {label:<22} bare {min(bare):7.1f} us, observed {min(watched):7.1f} us: "
            f"+{min(watched) - min(bare):.1f} us per stream"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    asyncio.run(main(parser.parse_args().rounds))
