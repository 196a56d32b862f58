"""Gateway CPU per translated stream chunk, for each translating provider.

Each provider function builds one realistic upstream stream of about 50 events, then feeds it to a
fresh stream translator many times (one ``feed`` per upstream event, as a network delivers them)
and reports CPU time (``time.process_time``) per upstream event and per OpenAI frame produced.
Target: at most 50 µs (0.05 ms) per chunk. Bounded by count; nothing here is a test.

Usage: python bench/translate_bench.py [--iterations N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgerelay.core.providers.anthropic_stream import AnthropicStream
from edgerelay.core.providers.base import ChatContext
from edgerelay.core.providers.gemini_stream import GeminiStream
from edgerelay.core.routing import Route

TARGET_US = 50.0


def _anthropic_event(data: dict, pad: int) -> bytes:
    # Padded with spaces before the last brace, as recent real streams are.
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {data['type']}\ndata: {text[:-1]}{' ' * pad}}}\n\n".encode()


def anthropic_stream_events() -> list[bytes]:
    """message_start, a thinking block, ping, 30 text deltas, a tool call in 6 pieces, end."""
    usage = {"input_tokens": 812, "cache_read_input_tokens": 2048, "output_tokens": 1}
    message = {
        "id": "msg_01BenchBenchBenchBench01",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    events: list[dict] = [{"type": "message_start", "message": message}]
    events.append(
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        }
    )
    events.append({"type": "ping"})
    for i in range(4):
        delta = {"type": "thinking_delta", "thinking": f" step {i}: weigh the options carefully"}
        events.append({"type": "content_block_delta", "index": 0, "delta": delta})
    signature = {"type": "signature_delta", "signature": "EuYDCmMIDBgCKkC05Zda4P" * 12}
    events.append({"type": "content_block_delta", "index": 0, "delta": signature})
    events.append({"type": "content_block_stop", "index": 0})
    events.append(
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}
    )
    words = (
        "The",
        "forecast",
        "for",
        "Paris:",
        "18",
        "°C,",
        "light",
        "wind;",
        "Tōkyō",
        "東京",
        "warmer",
    )
    for i in range(30):
        delta = {"type": "text_delta", "text": " " + words[i % len(words)]}
        events.append({"type": "content_block_delta", "index": 1, "delta": delta})
    events.append({"type": "content_block_stop", "index": 1})
    tool = {"type": "tool_use", "id": "toolu_01BenchTool", "name": "get_weather", "input": {}}
    events.append({"type": "content_block_start", "index": 2, "content_block": tool})
    for piece in ['{"ci', 'ty": "Pa', 'ris", "u', "nit", '": "celsi', 'us"}']:
        delta = {"type": "input_json_delta", "partial_json": piece}
        events.append({"type": "content_block_delta", "index": 2, "delta": delta})
    events.append({"type": "content_block_stop", "index": 2})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 245},
        }
    )
    events.append({"type": "message_stop"})
    return [_anthropic_event(e, (i * 7) % 13) for i, e in enumerate(events)]


def bench_anthropic(iterations: int) -> dict:
    events = anthropic_stream_events()
    frames = 0
    for include_usage in (False, True):  # warm up both paths
        translator = AnthropicStream("claude-x", "chatcmpl-bench", 1_760_000_000, include_usage)
        out = b"".join(translator.feed(e) for e in events) + translator.finish()
        frames = out.count(b"\n\n")
    start = time.process_time()
    for _ in range(iterations):
        translator = AnthropicStream("claude-x", "chatcmpl-bench", 1_760_000_000, True)
        for event in events:
            translator.feed(event)
        translator.finish()
    elapsed = time.process_time() - start
    return {
        "provider": "anthropic",
        "upstream_events": len(events),
        "frames_out": frames,
        "us_per_event": elapsed / (iterations * len(events)) * 1e6,
        "us_per_frame": elapsed / (iterations * frames) * 1e6,
    }


def _gemini_frame(parts: list, finish: str | None, candidates: int) -> bytes:
    # As Google sends them: `", "`-style JSON, usage on every frame, CRLF framing.
    candidate: dict = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    usage = {
        "promptTokenCount": 812,
        "candidatesTokenCount": candidates,
        "totalTokenCount": 812 + candidates + 245,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 812}],
        "thoughtsTokenCount": 245,
    }
    frame = {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": "gemini-2.5-flash",
        "responseId": "w1peaMz6INOvnvgPgYfPiQY",
    }
    return b"data: " + json.dumps(frame, ensure_ascii=False).encode() + b"\r\n\r\n"


def gemini_stream_events() -> list[bytes]:
    """A thought summary, 46 text frames, two whole function calls (one signed), the STOP."""
    words = ("The", "forecast", "for", "Paris:", "18", "°C,", "light", "wind;", "東京", "warmer")
    frames = [_gemini_frame([{"text": "**Planning** two lookups.", "thought": True}], None, 0)]
    for i in range(46):
        frames.append(_gemini_frame([{"text": " " + words[i % len(words)]}], None, i + 1))
    calls = [
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris", "unit": "celsius"}},
            "thoughtSignature": "EpwICpkIAXLI2nxlU6gsWZaZHRYkX1orzuM8vSUFwaAt" * 12,
        },
        {"functionCall": {"name": "get_weather", "args": {"city": "Tōkyō", "unit": "celsius"}}},
    ]
    frames.append(_gemini_frame(calls, None, 60))
    frames.append(_gemini_frame([{"text": ""}], "STOP", 60))
    return frames


def bench_gemini(iterations: int) -> dict:
    events = gemini_stream_events()
    route = Route(None, "gemini", "gemini-2.5-flash", "gemini-2.5-flash")

    def translator(include_usage: bool) -> GeminiStream:
        ids = iter(range(10**9))
        ctx = ChatContext("chatcmpl-bench", 1_760_000_000, lambda: str(next(ids)), include_usage)
        return GeminiStream(route, ctx)

    frames = 0
    for include_usage in (False, True):  # warm up both paths
        t = translator(include_usage)
        out = b"".join(t.feed(e) for e in events) + t.finish()
        frames = out.count(b"\n\n")
    start = time.process_time()
    for _ in range(iterations):
        t = translator(True)
        for event in events:
            t.feed(event)
        t.finish()
    elapsed = time.process_time() - start
    return {
        "provider": "gemini",
        "upstream_events": len(events),
        "frames_out": frames,
        "us_per_event": elapsed / (iterations * len(events)) * 1e6,
        "us_per_frame": elapsed / (iterations * frames) * 1e6,
    }


PROVIDERS = {"anthropic": bench_anthropic, "gemini": bench_gemini}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--provider", choices=sorted(PROVIDERS), action="append")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {args.iterations} streams per provider")
    print("| provider | upstream events | frames out | CPU µs/event | CPU µs/frame | target |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.provider or sorted(PROVIDERS):
        r = PROVIDERS[name](args.iterations)
        verdict = "ok" if r["us_per_event"] <= TARGET_US else "OVER"
        print(
            f"| {r['provider']} | {r['upstream_events']} | {r['frames_out']} "
            f"| {r['us_per_event']:.2f} | {r['us_per_frame']:.2f} | ≤{TARGET_US:.0f} {verdict} |"
        )


if __name__ == "__main__":
    main()
