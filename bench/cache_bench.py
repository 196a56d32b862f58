"""The response cache benchmark: a memory hit against an upstream call, on the real local server.

Starts the loopback fake upstream (bench/upstream.py, 50-chunk streams) and `edgerelay serve`
with EDGERELAY_CACHE=on, then sends, interleaved in small blocks so machine drift cancels out:

- hit, JSON and stream: the same request again (answered from the in-memory store);
- upstream call: the same request with ``x-edgerelay-cache: off`` (BYPASS: relayed as without
  the cache);
- miss: a new request each time (streamed upstream, recorded, stored);

at c=1 (latency) and c=32 (throughput). Also the CPU time ``Gateway.handle`` spends on a hit,
in process. Target: a memory hit answered in at most 0.3 ms at c=1 (p50), shown two ways: the
whole request as the client sees it, and the gateway's own time (its log line's duration_ms:
from the request reaching the app to its last byte handed to the server).
Bounded by count; prints figures only, nothing here is a test.
Usage: python bench/cache_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from relay_bench import ENV, PY, cpu_seconds, free_port, pct, wait_ready, wait_ready_post  # noqa: E402

TARGET_MS = 0.3
MESSAGES = [{"role": "user", "content": "a starter prompt"}]
HIT = {"model": "gpt-bench", "messages": MESSAGES, "finish": True}
OFF = {"x-edgerelay-cache": "off"}


async def one(session, url: str, body: str, headers: dict) -> float:
    start = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as r:
        await r.read()
        assert r.status == 200, r.status
        status = r.headers.get("x-edgerelay-cache")
    elapsed = time.perf_counter() - start
    assert status in ("HIT", "MISS", "BYPASS"), status
    return elapsed


async def run_block(session, url, bodies, headers, concurrency) -> list[float]:
    out: list[float] = []
    feed = iter(bodies)

    async def worker():
        for body in feed:
            out.append(await one(session, url, body, headers))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


async def measure(url: str, pid: int, rounds: int, log_path: Path) -> dict:
    fresh = itertools.count()
    hit_json = json.dumps(HIT)
    hit_stream = json.dumps({**HIT, "stream": True})
    json_headers = {"content-type": "application/json"}

    def misses(n):
        return [
            json.dumps({**HIT, "messages": [{"role": "user", "content": f"new {next(fresh)}"}]})
            for _ in range(n)
        ]

    scenarios = [
        ("hit, JSON, c=1", lambda: [hit_json] * 40, json_headers, 1),
        ("hit, stream, c=1", lambda: [hit_stream] * 40, json_headers, 1),
        ("upstream call (BYPASS), JSON, c=1", lambda: [hit_json] * 20, {**json_headers, **OFF}, 1),
        ("miss (recorded, stored), JSON, c=1", lambda: misses(20), json_headers, 1),
        ("hit, JSON, c=32", lambda: [hit_json] * 256, json_headers, 32),
        (
            "upstream call (BYPASS), JSON, c=32",
            lambda: [hit_json] * 128,
            {**json_headers, **OFF},
            32,
        ),
    ]
    out = {
        name: {"lat": [], "time": 0.0, "n": 0, "cpu": 0.0, "served": []} for name, *_ in scenarios
    }
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        await run_block(session, url, [hit_json] * 50, json_headers, 4)  # warm: stored, pooled
        await run_block(session, url, [hit_json] * 50, {**json_headers, **OFF}, 4)
        for _ in range(rounds):
            for name, bodies, headers, conc in scenarios:
                cpu0 = cpu_seconds(pid)
                logged = log_path.stat().st_size
                t0 = time.perf_counter()
                lat = await run_block(session, url, bodies(), headers, conc)
                cell = out[name]
                cell["served"] += served_ms(log_path, logged)
                cell["time"] += time.perf_counter() - t0
                cell["cpu"] += cpu_seconds(pid) - cpu0
                cell["n"] += len(lat)
                cell["lat"] += lat
    return out


def served_ms(log_path: Path, offset: int) -> list[float]:
    """The gateway's own time per request written since ``offset`` in its log file: from the
    request reaching the app to the last byte handed to the server (``duration_ms``), so the
    HTTP client, the loopback and the server's parsing are left out."""
    with log_path.open("rb") as log:
        log.seek(offset)
        return [json.loads(line)["duration_ms"] for line in log if line.strip()]


def _hit_us(path: str, answer: list[bytes], body: dict, n: int) -> tuple[float, float]:
    """CPU microseconds ``Gateway.handle`` spends per hit on ``path`` (JSON, stream) with the
    memory store, the replay's body included; no network. ``answer``: the upstream's stream."""
    from edgerelay.core import Gateway, Request, load_config
    from tests.support.drive import collect, drive
    from tests.support.fake_fetch import FakeFetch, FakeResponse

    sse = {"content-type": "text/event-stream"}
    fetch = FakeFetch(lambda r: FakeResponse(200, sse, list(answer)))
    env = {"OPENAI_API_KEY": "sk-bench", "EDGERELAY_CACHE": "on"}
    gw = Gateway(load_config(env), fetch, clock=time.time, new_id=lambda: "bench")
    figures = []
    for stream in (False, True):
        raw = json.dumps({**body, "stream": stream}).encode()

        # The first (miss) needs an event loop for its flight; hits then never suspend.
        async def first(raw=raw):
            response = await gw.handle(Request("POST", path, "", {}, raw))
            if response.stream is not None:
                [c async for c in response.stream]
            await response.aclose()

        asyncio.run(first())
        samples = []
        for _ in range(5):
            start = time.process_time()
            for _ in range(n):
                response = drive(gw.handle(Request("POST", path, "", {}, raw)))
                assert ("x-edgerelay-cache", "HIT") in response.headers
                if response.stream is not None:
                    collect(response.stream)
            samples.append((time.process_time() - start) / n * 1e6)
        figures.append(min(samples))
    return figures[0], figures[1]


def in_process_hit_us(n: int = 2000) -> tuple[float, float]:
    """Per chat completions hit (a 50-chunk answer)."""
    from tests.support.cache_wire import answer

    words = tuple(f" w{i}" for i in range(48))
    return _hit_us("/v1/chat/completions", answer(words), HIT, n)


def in_process_responses_hit_us(n: int = 2000) -> tuple[float, float]:
    """Per ``/v1/responses`` hit passed through to OpenAI's own Responses endpoint (a 50-event
    answer recorded from the upstream's stream)."""
    from tests.support import responses_wire

    words = tuple(f" w{i}" for i in range(42))
    body = {"model": "gpt-bench", "input": "a starter"}
    return _hit_us("/v1/responses", responses_wire.answer(words), body, n)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    up_port, gw_port = free_port(), free_port()
    upstream = subprocess.Popen(
        [PY, str(ROOT / "bench" / "upstream.py"), str(up_port)], cwd=ROOT, env=ENV
    )
    env = {
        **ENV,
        "OPENAI_BASE_URL": f"http://127.0.0.1:{up_port}/v1",
        "OPENAI_API_KEY": "sk-bench",
        "EDGERELAY_CACHE": "on",
    }
    scratch = tempfile.TemporaryDirectory()
    log_path = Path(scratch.name, "requests.log")
    log_path.touch()
    env["EDGERELAY_LOG_FILE"] = str(log_path)
    cmd = [PY, "-m", "edgerelay.server.cli", "serve", "--port", str(gw_port)]
    gateway = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_ready_post(f"http://127.0.0.1:{up_port}")
        wait_ready(f"http://127.0.0.1:{gw_port}/healthz", gateway)
        url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        results = asyncio.run(measure(url, gateway.pid, args.rounds, log_path))
    finally:
        for proc in (gateway, upstream):
            proc.terminate()
            proc.wait(10)
        scratch.cleanup()
    json_us, stream_us = in_process_hit_us()
    print("\n### Response cache (bench/cache_bench.py; 50-chunk answers, aiohttp client)\n")
    print(
        "| what | p50 | p90 | served in, p50 (the gateway's own) | requests/s "
        "| gateway CPU per request |"
    )
    print("|---|---|---|---|---|---|")
    for name, cell in results.items():
        lat = [v * 1000 for v in cell["lat"]]
        rate = cell["n"] / cell["time"] if cell["time"] else 0.0
        cpu = cell["cpu"] / cell["n"] * 1000 if cell["n"] else 0.0
        served = statistics.median(cell["served"]) if cell["served"] else float("nan")
        print(
            f"| {name} | {statistics.median(lat):.3f} ms | {pct(lat, 0.9):.3f} ms "
            f"| {served:.3f} ms | {rate:.0f} | {cpu:.3f} ms |"
        )
    hit = statistics.median(v * 1000 for v in results["hit, JSON, c=1"]["lat"])
    served_hit = statistics.median(results["hit, JSON, c=1"]["served"])
    print(f"\nin process, Gateway.handle per hit: JSON {json_us:.1f} µs, stream {stream_us:.1f} µs")
    r_json, r_stream = in_process_responses_hit_us()
    print(
        f"in process, per /v1/responses passthrough hit: JSON {r_json:.1f} µs, "
        f"stream {r_stream:.1f} µs"
    )
    for what, figure in (("as the client sees it", hit), ("served by the gateway", served_hit)):
        verdict = "met" if figure <= TARGET_MS else "NOT met"
        print(
            f"target: memory hit ≤ {TARGET_MS} ms at c=1 (p50), {what}: {figure:.3f} ms, {verdict}"
        )


if __name__ == "__main__":
    main()
