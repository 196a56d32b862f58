"""The Lambda target's numbers: cold import time of its modules, and the latency the streaming
loop adds over calling core directly.

1. Cold import: a fresh interpreter imports the streaming loop, the buffered handler and the
   httpx transport (httpx included), several times; the median is printed, with a breakdown.
2. Added latency: the same requests (mock/echo, streamed and not, so no upstream noise) through
   ``Gateway.handle`` directly, and through the real ``StreamLoop`` answering a minimal Runtime API
   on loopback TCP in the same event loop (event JSON in, chunked prelude + body out), interleaved
   in small blocks so machine drift cancels. Beside them, the bare exchange: the same Runtime API
   client fetching each event and streaming back the same answer in the same chunks, no
   gateway, which any runtime pays (two loopback connections, a write per chunk and the fake
   Runtime API's own work, all in this process); what the loop adds beyond the direct call and
   that exchange is its own work.

Prints a markdown table. Every loop is bounded by count; nothing here is a test.
Usage: python bench/lambda_bench.py [--imports N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgerelay.core import Request  # noqa: E402
from functions.aws_lambda.app import create_app  # noqa: E402
from functions.aws_lambda.events import prelude  # noqa: E402
from functions.aws_lambda.runtime_api import RuntimeAPI  # noqa: E402
from functions.aws_lambda.stream_loop import StreamLoop  # noqa: E402

IMPORT_PROBE = """
import sys, time
# As in the Lambda package (functions/aws_lambda/requirements.txt): no click, pygments or rich,
# which httpx imports for its command line when they are installed (this venv has them).
sys.modules.update(dict.fromkeys(("click", "pygments", "rich")))
t0 = time.perf_counter()
import httpx
t1 = time.perf_counter()
import edgerelay.core, edgerelay.core.gateway
t2 = time.perf_counter()
import functions.aws_lambda.stream_loop, functions.aws_lambda.handler
import edgerelay.transports.httpx_fetch
t3 = time.perf_counter()
from functions.aws_lambda.app import create_app
create_app(dict(ENV))
t4 = time.perf_counter()
crypto = int("cryptography" in sys.modules or "jwt" in sys.modules)
print((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3, (t4 - t0) * 1e3, crypto)
"""
# What the cold start is built with: identity by client key (no JWT), and with a JWKS URL, the
# one setting that loads PyJWT and cryptography (so the second shows what their import costs).
NO_JWT = {"EDGERELAY_CLIENT_KEYS": "sha256:" + "0" * 64}
WITH_JWKS = {"EDGERELAY_JWKS_URL": "https://idp.example/.well-known/jwks.json"}


def cold_imports(runs: int, env: dict[str, str]) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", f"ENV = {env!r}" + IMPORT_PROBE],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.split()
        samples.append([float(x) for x in out])
    names = ("httpx", "core", "lambda modules", "app built", "total", "crypto imported")
    return {name: statistics.median(s[i] for s in samples) for i, name in enumerate(names)}


def chat(stream: bool) -> bytes:
    body = {
        "model": "mock/echo",
        "stream": stream,
        "messages": [{"role": "user", "content": "a b c d e"}],
    }
    return json.dumps(body).encode()


def lambda_event(body: bytes) -> bytes:
    return json.dumps(
        {
            "version": "2.0",
            "rawPath": "/v1/chat/completions",
            "rawQueryString": "",
            "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "sourceIp": "127.0.0.1"}},
            "body": body.decode(),
            "isBase64Encoded": False,
        }
    ).encode()


class MiniRuntimeAPI:
    """Just enough Runtime API for timing: /next from a queue, /response read to its end."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.ids = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def invoke(self, event: bytes) -> bytes:
        self.ids += 1
        done = asyncio.get_running_loop().create_future()
        await self.queue.put((f"bench-{self.ids}", event, done))
        return await done

    async def serve(self, reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        _method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if path.endswith("/invocation/next"):
            try:
                request_id, event, done = await self.queue.get()
            except asyncio.CancelledError:
                # The run is over and asyncio.run cancels the loop's last wait: ended quietly,
                # as a cancelled connection callback would be logged with its traceback.
                writer.close()
                return
            self.pending = done
            writer.write(
                b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: %s\r\n"
                b"Lambda-Runtime-Deadline-Ms: %d\r\nContent-Length: %d\r\n\r\n%s"
                % (request_id.encode(), int((time.time() + 60) * 1000), len(event), event)
            )
        else:
            body = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                body.append(await reader.readexactly(size + 2))
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
            self.pending.set_result(b"".join(body))
        await writer.drain()
        writer.close()


async def bare_loop(runtime: RuntimeAPI, answer: list[bytes]) -> None:
    """The Runtime API exchange alone: each event fetched, and ``answer`` (the chunks the same
    request's body comes in, whatever the list holds at the time) streamed back one by one."""
    head = prelude(200, [("content-type", "application/json")])
    while True:
        invocation = await runtime.next_invocation()
        stream = await runtime.start_stream(invocation.request_id)
        for i, chunk in enumerate(answer):
            await stream.write(head + chunk if i == 0 else chunk)
        await stream.end()


async def body_chunks(app, body: bytes) -> list[bytes]:
    """The chunks a direct call's answer comes in (one for a JSON answer)."""
    request = Request(
        "POST", "/v1/chat/completions", "", {"content-type": "application/json"}, body
    )
    response = await app.gateway.handle(request)
    try:
        if response.stream is None:
            return [response.body]
        return [chunk async for chunk in response.stream if chunk]
    finally:
        await response.aclose()


async def latency(rounds: int, block: int = 20) -> dict[str, tuple[float, float]]:
    # The Lambda refuses anonymous calls by default; the latency figure is for an allowed one.
    # No per-request log line: it would flood the printed table (Lambda writes it to stdout).
    app = create_app({"EDGERELAY_ALLOW_ANONYMOUS": "true", "EDGERELAY_LOG": "off"})
    fake = MiniRuntimeAPI()
    address = await fake.start()
    loop_task = asyncio.create_task(StreamLoop(RuntimeAPI(address), app).run())
    bare = MiniRuntimeAPI()
    answer: list[bytes] = []  # the chunks the bare exchange sends: the current request's
    bare_task = asyncio.create_task(bare_loop(RuntimeAPI(await bare.start()), answer))
    results: dict[str, list[float]] = {}
    for stream in (False, True):
        body = chat(stream)
        event = lambda_event(body)
        direct, through, exchange = [], [], []
        answer[:] = await body_chunks(app, body)
        for _ in range(rounds):
            for _ in range(block):
                t = time.perf_counter()
                response = await app.gateway.handle(
                    Request(
                        "POST",
                        "/v1/chat/completions",
                        "",
                        {"content-type": "application/json"},
                        body,
                    )
                )
                if response.stream is not None:
                    async for _chunk in response.stream:
                        pass
                await response.aclose()
                direct.append(time.perf_counter() - t)
            for _ in range(block):
                t = time.perf_counter()
                await fake.invoke(event)
                through.append(time.perf_counter() - t)
            for _ in range(block):
                t = time.perf_counter()
                await bare.invoke(event)
                exchange.append(time.perf_counter() - t)
        kind = "stream" if stream else "non-stream"
        results[f"{kind} direct"] = direct
        results[f"{kind} loop"] = through
        results[f"{kind} exchange"] = exchange
    loop_task.cancel()
    bare_task.cancel()
    fake.server.close()
    bare.server.close()
    return {
        k: (statistics.median(v) * 1e6, statistics.quantiles(v, n=100)[98] * 1e6)
        for k, v in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--imports", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()

    plain = cold_imports(args.imports, NO_JWT)
    jwks = cold_imports(args.imports, WITH_JWKS)
    print(f"## Cold start to a built app (fresh interpreter, median of {args.imports}, ms)\n")
    print("| part | identity by client key | with EDGERELAY_JWKS_URL |\n|---|---|---|")
    for name in plain:
        if name != "crypto imported":
            print(f"| {name} | {plain[name]:.1f} | {jwks[name]:.1f} |")
    loaded = {False: "no", True: "yes"}
    print(
        f"| PyJWT / cryptography imported | {loaded[bool(plain['crypto imported'])]} "
        f"| {loaded[bool(jwks['crypto imported'])]} |"
    )

    timings = asyncio.run(latency(args.rounds))
    print(f"\n## Per request, mock/echo ({args.rounds * 20} requests each, µs)\n")
    print(
        "| request | direct median | loop median | added | ratio | loop p99 "
        "| bare exchange median | loop's own work |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind in ("non-stream", "stream"):
        direct, _ = timings[f"{kind} direct"]
        through, p99 = timings[f"{kind} loop"]
        exchange, _ = timings[f"{kind} exchange"]
        print(
            f"| {kind} | {direct:.0f} | {through:.0f} | {through - direct:.0f} | "
            f"{through / direct:.1f}x | {p99:.0f} | {exchange:.0f} | "
            f"{through - direct - exchange:.0f} |"
        )


if __name__ == "__main__":
    main()
