"""Where a stream's time to first byte goes inside the gateway: timestamps along the path of
one streamed chat request (c=1, against bench/upstream.py), medians of each step over N
requests. Not a test; the steps are marked by wrapping the functions named below, so a
refactor that renames one needs this file updated.

Usage: python bench/first_byte_trace.py [--requests N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

STEPS = {
    "app called": "uvicorn calls the app (request headers parsed)",
    "gateway.handle": "body read, Request built, disconnect guard armed",
    "fetch called": "core: parse, checks, route, the upstream request built",
    "upstream headers": "aiohttp: request sent, upstream's response headers read",
    "handle returned": "core: the response built (header filter, observer, log record)",
    "start sent": "headers encoded and written by uvicorn",
    "first chunk read": "aiohttp: the first body chunk arrives",
    "first chunk observed": "core: total-timeout check, the stream observer (event cut)",
    "first chunk sent": "written by uvicorn: the first body byte is out",
}


def serve(port: int) -> None:
    """The gateway (edgerelay serve) with timestamps; writes the medians at SIGTERM."""
    from edgerelay.core import observer as observer_module
    from edgerelay.server import asgi
    from edgerelay.transports import aiohttp_fetch

    now = time.perf_counter
    marks: dict[str, float] = {}
    steps: dict[str, list[float]] = {name: [] for name in STEPS}

    def mark(name: str) -> None:
        marks.setdefault(name, now())

    http = asgi.EdgerelayASGI._http

    async def traced_http(self, scope, receive, send):
        marks.clear()
        mark("app called")

        async def traced_send(message):
            await send(message)
            if message["type"] == "http.response.start":
                mark("start sent")
            elif message.get("body"):
                mark("first chunk sent")

        await http(self, scope, receive, traced_send)
        if scope["path"] == "/v1/chat/completions" and len(marks) == len(STEPS):
            previous = marks["app called"]
            for name in STEPS:
                steps[name].append((marks[name] - previous) * 1e6)
                previous = marks[name]

    handle = asgi.Gateway.handle

    async def traced_handle(self, request, **kw):
        mark("gateway.handle")
        response = await handle(self, request, **kw)
        mark("handle returned")
        return response

    call = aiohttp_fetch.AiohttpFetch.__call__

    async def traced_call(self, request):
        mark("fetch called")
        response = await call(self, request)
        mark("upstream headers")
        return response

    chunks = aiohttp_fetch.AiohttpResponse.aiter_bytes

    async def traced_chunks(self):
        async for chunk in chunks(self):
            mark("first chunk read")
            yield chunk

    feed = observer_module.StreamObserver.feed

    def traced_feed(self, chunk):
        out = feed(self, chunk)
        mark("first chunk observed")
        return out

    asgi.EdgerelayASGI._http = traced_http
    asgi.Gateway.handle = traced_handle
    aiohttp_fetch.AiohttpFetch.__call__ = traced_call
    aiohttp_fetch.AiohttpResponse.aiter_bytes = traced_chunks
    observer_module.StreamObserver.feed = traced_feed

    def report(*_):
        medians = {name: statistics.median(v) if v else None for name, v in steps.items()}
        print(json.dumps({"n": len(steps["app called"]), "steps": medians}), flush=True)
        os._exit(0)

    import uvicorn.server

    uvicorn.server.HANDLED_SIGNALS = ()  # SIGTERM is ours: report, then exit
    signal.signal(signal.SIGTERM, report)
    from edgerelay.server.cli import main

    main(["serve", "--port", str(port)])


async def drive(url: str, n: int) -> float:
    """n streamed requests one after another; the client's median time to first byte (µs)."""
    import aiohttp
    from relay_bench import STREAM_BODY

    firsts = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            start = time.perf_counter()
            async with session.post(url, data=STREAM_BODY) as answer:
                first = None
                async for _ in answer.content.iter_any():
                    first = first or time.perf_counter()
            firsts.append((first - start) * 1e6)
    return statistics.median(firsts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    from relay_bench import ENV, PY, free_port, wait_ready, wait_ready_post

    up_port, port = free_port(), free_port()
    upstream = subprocess.Popen([PY, str(ROOT / "bench/upstream.py"), str(up_port)], cwd=ROOT)
    up_url = f"http://127.0.0.1:{up_port}"
    env = {**ENV, "OPENAI_BASE_URL": up_url + "/v1", "OPENAI_API_KEY": "sk-bench"}
    gateway = subprocess.Popen(
        [PY, __file__, "--serve", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_ready_post(up_url)
        wait_ready(f"http://127.0.0.1:{port}/healthz", gateway)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        asyncio.run(drive(url, 50))  # warm: connections, caches, the lazy transport
        direct = asyncio.run(drive(up_url + "/v1/chat/completions", args.requests))
        through = asyncio.run(drive(url, args.requests))
        gateway.terminate()
        found = json.loads(gateway.communicate(timeout=30)[0].splitlines()[-1])
    finally:
        for proc in (gateway, upstream):
            proc.terminate()
            proc.wait(10)
    if args.json:
        print(json.dumps({"direct": direct, "through": through, **found}))
        return
    print(f"\nTime to first byte of a 50-chunk stream, c=1, medians of {args.requests} requests")
    print(f"client: direct {direct:.0f} µs, through the gateway {through:.0f} µs")
    print("inside the gateway, from uvicorn calling the app (µs, each step's own median):\n")
    print("| step | µs | what happens |\n|---|---|---|")
    for name, what in STEPS.items():
        value = found["steps"][name]
        print(f"| {name} | {'' if value is None else f'{value:.0f}'} | {what} |")


if __name__ == "__main__":
    main()
