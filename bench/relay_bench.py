"""The relay benchmark: direct calls to a loopback fake upstream vs the same calls through the
gateway (aiohttp and httpx transports), interleaved in small blocks so machine drift cancels.

Prints one markdown table. Every loop is bounded by count; nothing here is a test.
Usage: python bench/relay_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
TICK = os.sysconf("SC_CLK_TCK")
BODY = json.dumps({"model": "gpt-bench", "messages": [{"role": "user", "content": "hi"}]})
STREAM_BODY = json.dumps({**json.loads(BODY), "stream": True})
PACED_BODY = json.dumps({**json.loads(BODY), "stream": True, "pace_ms": 2})
SENT = itertools.count()
# A client key, for the gateways run with every feature on (the others ignore it).
HEADERS = {"content-type": "application/json", "authorization": "Bearer bench-client-key-0123"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, limit: float = 10.0) -> float:
    """Seconds from now until GET url answers 200 (polled every 2 ms)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=1)
            conn.request("GET", parts.path)
            if conn.getresponse().status == 200:
                return time.perf_counter() - start
        except OSError:
            time.sleep(0.002)
    raise RuntimeError(f"{url} did not answer within {limit} s")


def cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children (granian serves from a worker process)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / TICK
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += cpu_seconds(int(child))
    return total


def rss_mib(pid: int) -> float:
    """Resident MiB of ``pid`` and its live children."""
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    total = int(match.group(1)) / 1024
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            total += rss_mib(int(child))
    return total


# As deployed: bytecode cached (a shell may set PYTHONDONTWRITEBYTECODE; a server does not).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


# Every feature on the request path: identity (a client key), limits (memory store, limits
# never reached), the response cache (memory; every body is new, so each request misses) and
# retries configured (none needed). The log line is on in every run (the default).
EVERYTHING = {
    "EDGERELAY_CLIENT_KEYS": HEADERS["authorization"].removeprefix("Bearer "),
    "EDGERELAY_CONFIG": str(Path(tempfile.gettempdir()) / "edgerelay-bench-everything.toml"),
    "EDGERELAY_CACHE": "on",
    "EDGERELAY_RETRIES": "2",
}
EVERYTHING_TOML = """# written by bench/relay_bench.py: limits that are never reached
[policies.default]
requests_per_minute = 1000000000
tokens_per_minute = 1000000000000
"""


def start_gateway(
    port: int, upstream: str, client: str, server: str = "uvicorn", everything: bool = False
) -> tuple[subprocess.Popen, float]:
    """``edgerelay serve`` (uvicorn), or the same app under granian's ASGI interface."""
    env = {
        **ENV,
        "OPENAI_BASE_URL": upstream + "/v1",
        "OPENAI_API_KEY": "sk-bench",
        "EDGERELAY_HTTP_CLIENT": client,
        **(EVERYTHING if everything else {}),
    }
    if everything:
        Path(EVERYTHING["EDGERELAY_CONFIG"]).write_text(EVERYTHING_TOML)
    cmd = [PY, "-m", "edgerelay.server.cli", "serve", "--port", str(port)]
    if server == "granian":
        # As edgerelay serve sets uvicorn: uvloop, HTTP/1.1, no WebSocket, a header deadline
        # of 10 s and at most 1000 requests at once.
        cmd = [PY, "-m", "granian", "--interface", "asgi", "--factory", "--loop", "uvloop",
               "--http", "1", "--no-ws", "--http1-header-read-timeout", "10000",
               "--backpressure", "1000", "--log-level", "warning", "--host", "127.0.0.1",
               "--port", str(port), "edgerelay.server.asgi:create_app"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    return proc, wait_ready(f"http://127.0.0.1:{port}/healthz", proc)


def has_granian() -> bool:
    import importlib.util

    return importlib.util.find_spec("granian") is not None


async def one(session: aiohttp.ClientSession, url: str, body: str) -> tuple[float, float]:
    """(total seconds, seconds to the first body byte) for one request. Every request's body
    is new (a number in its message), so a gateway with the response cache on misses."""
    body = body.replace('"hi"', f'"hi {next(SENT)}"', 1)
    try:
        return await _timed(session, url, body)
    except aiohttp.ClientConnectionError:
        # A kept-alive connection the server closed while it sat idle (its keep-alive timeout
        # passes while the other targets run): the pool's race, not the server's time.
        return await _timed(session, url, body)


async def _timed(session: aiohttp.ClientSession, url: str, body: str) -> tuple[float, float]:
    start = time.perf_counter()
    async with session.post(url, data=body, headers=HEADERS) as r:
        first = None
        async for _ in r.content.iter_any():
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
        assert r.status == 200, r.status
    return end - start, (first or end) - start


async def block(session, url, body, n, concurrency) -> list[tuple[float, float]]:
    results: list[tuple[float, float]] = []
    per_worker = n // concurrency

    async def worker():
        for _ in range(per_worker):
            results.append(await one(session, url, body))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def measure(targets: dict[str, str], pids: dict[str, int], rounds: int) -> dict:
    out: dict = {}
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        scenarios = [
            ("json c=1", BODY, 1, 20),
            ("stream c=1", STREAM_BODY, 1, 10),
            ("paced stream c=1", PACED_BODY, 1, 2),
            ("json c=32", BODY, 32, 128),
            ("stream c=32", STREAM_BODY, 32, 64),
        ]
        for name, _, _, _ in scenarios:
            out[name] = {
                t: {"lat": [], "ttfb": [], "time": 0.0, "n": 0, "cpu": 0.0} for t in targets
            }
        for url in targets.values():  # warm connections and caches
            await block(session, url, BODY, 64, 8)
            await block(session, url, STREAM_BODY, 16, 4)
        peak = dict.fromkeys(pids, 0.0)
        for _ in range(rounds):
            for name, body, conc, n in scenarios:
                for target, url in targets.items():
                    pid = pids.get(target)
                    cpu0 = cpu_seconds(pid) if pid else 0.0
                    t0 = time.perf_counter()
                    results = await block(session, url, body, n, conc)
                    cell = out[name][target]
                    cell["time"] += time.perf_counter() - t0
                    cell["n"] += len(results)
                    cell["lat"] += [r[0] for r in results]
                    cell["ttfb"] += [r[1] for r in results]
                    if pid:
                        cell["cpu"] += cpu_seconds(pid) - cpu0
                        peak[target] = max(peak[target], rss_mib(pid))
        out["peak_rss"] = peak
    return out


def _top_level_imports(code: str) -> dict[str, int]:
    """Cumulative microseconds of each top-level import of a fresh ``python -X importtime``."""
    proc = subprocess.run(
        [PY, "-X", "importtime", "-c", code],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        check=True,
    )
    found = {}
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2][1:].startswith(" "):
            found[parts[2].strip()] = int(parts[1])
    return found


def import_ms(modules: str, runs: int = 5) -> float:
    """What importing ``modules`` adds to a bare interpreter's start, median of runs (ms)."""
    baseline = set(_top_level_imports("pass"))
    _top_level_imports(f"import {modules}")  # writes the bytecode caches, as an install does
    times = []
    for _ in range(runs):
        found = _top_level_imports(f"import {modules}")
        times.append(sum(us for name, us in found.items() if name not in baseline) / 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--pin",
        action="store_true",
        help="gateways on CPU 1; load generator and fake upstream on CPU 0 (both runs alike)",
    )
    args = parser.parse_args()

    up_port = free_port()
    upstream = subprocess.Popen([PY, str(ROOT / "bench/upstream.py"), str(up_port)], cwd=ROOT)
    procs = [upstream]
    try:
        up_url = f"http://127.0.0.1:{up_port}"
        wait_ready_post(up_url)
        gateways, startup = {}, {}
        for client in ("aiohttp", "httpx"):
            port = free_port()
            proc, seconds = start_gateway(port, up_url, client)
            procs.append(proc)
            gateways[client] = (proc, f"http://127.0.0.1:{port}")
            startup[client] = seconds
        if has_granian():  # the server comparison: uvicorn and granian, features off and on
            variants = {"all": ("uvicorn", True), "granian": ("granian", False)}
            variants["granian-all"] = ("granian", True)
            for name, (server, everything) in variants.items():
                port = free_port()
                proc, seconds = start_gateway(port, up_url, "aiohttp", server, everything)
                procs.append(proc)
                gateways[name] = (proc, f"http://127.0.0.1:{port}")
                startup[name] = seconds
        port = free_port()
        bare = subprocess.Popen(
            [PY, str(ROOT / "bench/minimal_relay.py"), str(port), up_url], cwd=ROOT, env=ENV
        )
        procs.append(bare)
        startup["bare"] = wait_ready(f"http://127.0.0.1:{port}/healthz", bare)
        gateways["bare"] = (bare, f"http://127.0.0.1:{port}")
        startup["floor"] = floor_startup()
        idle = {c: rss_mib(p.pid) for c, (p, _) in gateways.items()}
        targets = {"direct": up_url + "/v1/chat/completions"}
        targets |= {f"gw-{c}": u + "/v1/chat/completions" for c, (_, u) in gateways.items()}
        pids = {f"gw-{c}": p.pid for c, (p, _) in gateways.items()}
        if args.pin:
            os.sched_setaffinity(0, {0})
            pin(upstream.pid, {0})
            for proc, _ in gateways.values():
                pin(proc.pid, {1})
        results = asyncio.run(measure(targets, pids, args.rounds))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    report(results, startup, idle, args.pin)


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` and of its children onto ``cpus`` (granian's runtime threads
    and worker process included)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)
        for child in (task / "children").read_text().split():
            pin(int(child), cpus)


def floor_startup(runs: int = 3) -> float:
    """Seconds to the first 200 of uvicorn serving a do-nothing app (minimal_relay.py with no
    upstream: no aiohttp), median of ``runs``: what no Python gateway on uvicorn starts below."""
    times = []
    for _ in range(runs):
        port = free_port()
        cmd = [PY, str(ROOT / "bench/minimal_relay.py"), str(port), "-"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV)
        try:
            times.append(wait_ready(f"http://127.0.0.1:{port}/healthz", proc))
        finally:
            proc.terminate()
            proc.wait(10)
    return statistics.median(times)


def wait_ready_post(url: str) -> None:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    for _ in range(1000):
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=1)
            conn.request("POST", "/v1/chat/completions", BODY)
            conn.getresponse().read()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("upstream did not start")


def row(*cells: object) -> None:
    print("| " + " | ".join(str(c) for c in cells) + " |")


COLUMNS = [("gw-aiohttp", "gw aiohttp"), ("gw-httpx", "gw httpx"), ("gw-bare", "bare relay")]
SERVERS = [
    ("gw-all", "gw all on"),
    ("gw-granian", "granian"),
    ("gw-granian-all", "granian all on"),
]


def report(results: dict, startup: dict, idle: dict, pinned: bool) -> None:
    ms = 1000
    columns = COLUMNS + [c for c in SERVERS if c[0] in results["json c=1"]]
    print(f"\nEdgerelay relay benchmark — {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print("Added = through the gateway minus direct, same run, interleaved blocks. The bare")
    print("relay (bench/minimal_relay.py: uvicorn + aiohttp, no features) is the floor.")
    if pinned:
        print("Pinned: gateways on CPU 1; load generator and fake upstream on CPU 0.")
    else:
        print("Unpinned: load generator, fake upstream and gateway share all cores.")
    if len(columns) > len(COLUMNS):
        from importlib.metadata import version

        print(f"Servers: gw = edgerelay serve (uvicorn {version('uvicorn')}, httptools, uvloop);")
        print(f"granian = the same app under granian {version('granian')} (ASGI, uvloop, HTTP/1).")
        print("All on: identity (client key), limits (memory), response cache (memory, every")
        print("request a miss), retries configured; the log line is on in every gateway.")
    else:
        print("granian is not installed (pip install granian): no server comparison.")
    print()
    row("scenario", "metric", "direct", *(x for _, label in columns for x in (label, "added")))
    row(*["---"] * (3 + 2 * len(columns)))

    def added(metric, d, fmt="{:+.3f}"):
        cells = []
        for key, _ in columns:
            value = metric(results_of[key])
            cells += [f"{value:.3f}", fmt.format(value - metric(d))]
        return cells

    for name, cells in results.items():
        if name == "peak_rss":
            continue
        d = cells["direct"]
        results_of = cells
        for q in (0.5, 0.99):
            row(name, f"p{int(q * 100)} ms", f"{pct(d['lat'], q) * ms:.3f}",
                *added(lambda c, q=q: pct(c["lat"], q) * ms, d))  # fmt: skip
        if "stream" in name:
            row(name, "TTFB p50 ms", f"{pct(d['ttfb'], 0.5) * ms:.3f}",
                *added(lambda c: pct(c["ttfb"], 0.5) * ms, d))  # fmt: skip
        if "c=32" in name:
            rate = d["n"] / d["time"]
            out = []
            for key, _ in columns:
                mine = cells[key]["n"] / cells[key]["time"]
                out += [f"{mine:.0f}", f"{mine / rate:.2f}x"]
            row(name, "req/s", f"{rate:.0f}", *out)
        cpu = []
        for key, _ in columns:
            cpu += [f"{cells[key]['cpu'] / cells[key]['n'] * ms:.3f}", ""]
        row(name, "process CPU ms/req", "", *cpu)
    peak = results["peak_rss"]
    short = [key.removeprefix("gw-") for key, _ in columns]
    row("process", "RSS idle MiB", "", *(x for k in short for x in (f"{idle[k]:.1f}", "")))
    row("process", "RSS peak MiB", "",
        *(x for k in short for x in (f"{peak['gw-' + k]:.1f}", "")))  # fmt: skip
    row("process", "startup to first 200 s", "",
        *(x for k in short for x in (f"{startup[k]:.3f}", "")))  # fmt: skip
    print()
    print(
        f"startup floor (uvicorn + uvloop + httptools serving a do-nothing app, no aiohttp): "
        f"{startup['floor']:.3f} s, median of 3"
    )
    print()
    print(
        f"import edgerelay.core: {import_ms('edgerelay.core'):.1f} ms "
        "(-X importtime, bytecode cached, median of 5)"
    )
    serve = "edgerelay.server.asgi, edgerelay.transports.aiohttp_fetch, uvicorn, uvloop, httptools"
    print(f"import {serve}: {import_ms(serve):.1f} ms")


if __name__ == "__main__":
    main()
