"""Load held: many slow streams at once through the real `edgerelay serve`, and clients that
vanish mid-stream. A script, not a test: it prints figures.

1. N concurrent slow streams (20 chunks, 50 ms apart) from a loopback upstream through the
   gateway: errors, whether every stream arrived byte-identical, the gateway's RSS growth per
   open stream and its CPU time.
2. M streams whose clients vanish after a few chunks: how long until the upstream saw each of
   its connections closed, and the gateway's open file descriptors before and after.

The bench raises its own open-file limit (the default soft limit is 1,024) and the gateway and
upstream it starts inherit it. Every loop is bounded.
Usage: python bench/load_bench.py [--streams 1000] [--vanish 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from relay_bench import ENV, PY, ROOT, cpu_seconds, free_port, rss_mib, wait_ready

CHUNKS = 20
PACE = 0.05


def chunk(i: int) -> bytes:
    delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f" token{i}"}
    body = {
        "id": "chatcmpl-load",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-load",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


STREAM = [chunk(i) for i in range(CHUNKS - 1)] + [b"data: [DONE]\n\n"]
EXPECTED = b"".join(STREAM)
BODY = json.dumps(
    {"model": "gpt-load", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
)


# -- the upstream (run in its own process: python load_bench.py --upstream PORT) --------------


def run_upstream(port: int) -> None:
    from aiohttp import web

    closed: list[float] = []  # wall-clock times of connections dropped before the end
    state = {"open": 0}

    async def stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        state["open"] += 1
        try:
            for piece in STREAM:
                await response.write(piece)
                await asyncio.sleep(PACE)
            await response.write_eof()
        except asyncio.CancelledError:
            closed.append(time.time())
            raise
        except ConnectionError:  # the gateway dropped it (its client left): nothing to log
            closed.append(time.time())
        finally:
            state["open"] -= 1
        return response

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"open": state["open"], "closed": closed})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", stream)
    app.router.add_get("/stats", stats)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# -- the load ------------------------------------------------------------------------------------


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sockets_by_peer(pid: int, upstream_port: int, gateway_port: int) -> dict[str, int]:
    """The process's open TCP sockets: to the upstream (pooled or in use), from clients (on
    the gateway's port), and other; from /proc, so an fd held by a kept-alive pool
    connection is told apart from a leaked one."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    counts = {"upstream": 0, "clients": 0, "other": 0}
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as listing:
                lines = listing.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] not in inodes:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == upstream_port:
                counts["upstream"] += 1
            elif local_port == gateway_port:
                counts["clients"] += 1
            else:
                counts["other"] += 1
    return counts


async def slow_streams(url: str, n: int, pid: int) -> dict:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=120)
    peak = {"rss": 0.0, "open": 0}
    opened = 0
    done = asyncio.Event()

    async def one(session: aiohttp.ClientSession) -> tuple[bool, str]:
        nonlocal opened
        try:
            async with session.post(
                url, data=BODY, headers={"content-type": "application/json"}
            ) as r:
                opened += 1
                body = await r.read()
                if r.status != 200:
                    return False, f"status {r.status}"
                return body == EXPECTED, "" if body == EXPECTED else "bytes differ"
        except Exception as exc:  # counted, reported by kind
            return False, type(exc).__name__

    async def sample() -> None:
        for _ in range(100_000):
            if done.is_set():
                return
            peak["rss"] = max(peak["rss"], rss_mib(pid))
            peak["open"] = max(peak["open"], opened)
            await asyncio.sleep(0.02)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sampler = asyncio.ensure_future(sample())
        started = time.perf_counter()
        results = await asyncio.gather(*(one(session) for _ in range(n)))
        wall = time.perf_counter() - started
        done.set()
        await sampler
    errors = [why for ok, why in results if not ok]
    return {"wall": wall, "errors": errors, "peak_rss": peak["rss"]}


async def vanishing(url: str, upstream: str, m: int) -> dict:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    vanished: list[float] = []

    async def one(session: aiohttp.ClientSession) -> None:
        response = await session.post(url, data=BODY, headers={"content-type": "application/json"})
        got = 0
        async for _ in response.content.iter_any():
            got += 1
            if got >= 3:
                break
        vanished.append(time.time())
        response.close()  # the client goes away: its connection is dropped

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session) for _ in range(m)))
        # Wait (bounded) for the upstream to see every connection gone.
        stats = {}
        for _ in range(300):
            async with session.get(upstream + "/stats") as r:
                stats = await r.json()
            if stats["open"] == 0:
                break
            await asyncio.sleep(0.01)
    closed = sorted(stats["closed"])[-m:]
    lags = sorted(c - v for c, v in zip(closed, sorted(vanished), strict=False))
    return {"still_open": stats["open"], "closed": len(stats["closed"]), "lags": lags}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--vanish", type=int, default=200)
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        run_upstream(args.upstream)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, 8 * args.streams + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # inherited by both servers

    up_port, gw_port = free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{up_port}"
    upstream = subprocess.Popen([PY, __file__, "--upstream", str(up_port)], cwd=ROOT)
    env = {**ENV, "OPENAI_BASE_URL": upstream_url + "/v1", "OPENAI_API_KEY": "sk-bench"}
    # One pool holds every stream (EDGERELAY_POOL_SIZE defaults to 256 per provider): all N
    # are open upstream at once, not queued for a connection.
    env["EDGERELAY_POOL_SIZE"] = str(args.streams + args.vanish)
    # serve's --limit-concurrency (default 1000) would turn the N-th stream into a 503.
    limit = str(args.streams + args.vanish + 100)
    cmd = [PY, "-m", "edgerelay.server.cli", "serve", "--port", str(gw_port)]
    cmd += ["--limit-concurrency", limit]
    gateway = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_ready(upstream_url + "/healthz", upstream)
        wait_ready(f"http://127.0.0.1:{gw_port}/healthz", gateway)
        url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        asyncio.run(slow_streams(url, 20, gateway.pid))  # warm up: imports, pools
        idle_rss, idle_fds = rss_mib(gateway.pid), open_fds(gateway.pid)
        idle_held = sockets_by_peer(gateway.pid, up_port, gw_port)
        cpu0 = cpu_seconds(gateway.pid)
        load = asyncio.run(slow_streams(url, args.streams, gateway.pid))
        cpu = cpu_seconds(gateway.pid) - cpu0
        fds_before = open_fds(gateway.pid)
        gone = asyncio.run(vanishing(url, upstream_url, args.vanish))
        fds_after = fds_before
        for _ in range(300):  # bounded wait for the gateway's sockets to be released
            fds_after = open_fds(gateway.pid)
            if fds_after <= fds_before:
                break
            time.sleep(0.01)
        held = sockets_by_peer(gateway.pid, up_port, gw_port)
    finally:
        for proc in (gateway, upstream):
            proc.terminate()
            proc.wait(10)

    growth_kib = (load["peak_rss"] - idle_rss) * 1024 / args.streams
    errors = load["errors"]
    kinds = {e: errors.count(e) for e in set(errors)}
    lags = gone["lags"]
    print(f"\n## Load held (soft open-file limit raised {soft} -> {wanted})\n")
    print("| what | figure | target |")
    print("|---|---|---|")
    print(
        f"| {args.streams} concurrent slow streams ({CHUNKS} chunks, {PACE * 1000:.0f} ms apart): "
        f"errors | {len(errors)} {kinds or ''} | 0 |"
    )
    print(f"| byte-identical streams | {args.streams - len(errors)} / {args.streams} | all |")
    print(f"| wall time for all | {load['wall']:.2f} s | |")
    print(f"| gateway RSS idle → peak | {idle_rss:.1f} → {load['peak_rss']:.1f} MiB | |")
    print(f"| RSS growth per open stream | {growth_kib:.1f} KiB | ≤ 50 KiB |")
    print(
        f"| gateway CPU for the {args.streams} streams | {cpu:.2f} s "
        f"({cpu / args.streams * 1000:.2f} ms per stream) | |"
    )
    print(
        f"| {args.vanish} clients vanish mid-stream: upstream connections still open | "
        f"{gone['still_open']} | 0 |"
    )
    if lags:
        print(
            f"| upstream close after the client vanished: median / max | "
            f"{lags[len(lags) // 2] * 1000:.0f} ms / {lags[-1] * 1000:.0f} ms | ≤ 1 s |"
        )
    print(
        f"| gateway open fds: idle / before vanish / after | {idle_fds} / {fds_before} / "
        f"{fds_after} | back to idle |"
    )
    rest = fds_after - held["upstream"] - held["clients"]
    idle_rest = idle_fds - idle_held["upstream"] - idle_held["clients"]
    print(
        f"| fds after, apart from kept-alive pool connections to the upstream "
        f"({held['upstream']}) and client sockets ({held['clients']}), against idle's "
        f"({idle_held['upstream']}, {idle_held['clients']}) | {rest} / {idle_rest} | equal |"
    )


if __name__ == "__main__":
    main()
