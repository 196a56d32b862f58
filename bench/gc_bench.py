"""The server with its garbage collector tuned (the default; edgerelay/server/gc_tuning.py)
against the same server with CPython's own settings (``EDGERELAY_GC=cpython``), in the same
run: both behind the same loopback upstream and load generator, in interleaved blocks of a few
thousand requests at 32 at once (long enough for the process's CPU time, counted in 10 ms
ticks, to be read to a few µs per request). Medians of the blocks, and each pair's
difference, so the spread shows the noise. Figures only, nothing here is a test.

Usage: python bench/gc_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time

import aiohttp

# Run as a script, the bench folder is on sys.path: relay_bench is its harness.
from relay_bench import (
    BODY,
    ENV,
    PY,
    ROOT,
    STREAM_BODY,
    block,
    cpu_seconds,
    free_port,
    rss_mib,
    wait_ready,
    wait_ready_post,
)

MODES = {"tuned": "tuned", "CPython's": "cpython"}


def start(mode: str, upstream: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**ENV, "OPENAI_BASE_URL": upstream + "/v1", "OPENAI_API_KEY": "sk-bench"}
    env["EDGERELAY_GC"] = mode
    cmd = [PY, "-m", "edgerelay.server.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/healthz", proc)
    return proc, url


SCENARIOS = (("JSON", BODY, 4096), ("50-chunk stream", STREAM_BODY, 1024))


async def measure(targets: dict[str, tuple[str, int]], rounds: int) -> dict:
    """Per scenario and mode: (µs of server CPU per request, requests/s) for each block."""
    out: dict = {name: {mode: [] for mode in targets} for name, _, _ in SCENARIOS}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        for url, _ in targets.values():  # warm connections
            await block(session, url, BODY, 256, 32)
        for _ in range(rounds):
            for name, body, n in SCENARIOS:
                for mode, (url, pid) in targets.items():
                    cpu, began = cpu_seconds(pid), time.perf_counter()
                    done = len(await block(session, url, body, n, 32))
                    wall = time.perf_counter() - began
                    out[name][mode].append(((cpu_seconds(pid) - cpu) / done * 1e6, done / wall))
    return out


def report(results: dict, rss: dict) -> None:
    tuned, plain = MODES
    print("\nThe server's garbage collector: tuned (the default) against CPython's settings")
    print("(EDGERELAY_GC=cpython); 32 requests at once, interleaved blocks, medians.\n")
    print("| scenario | tuned, CPU µs/req | CPython's | difference (each pair) | req/s, both |")
    print("|---|---|---|---|---|")
    for name, cells in results.items():
        a, b = cells[tuned], cells[plain]
        pairs = ", ".join(f"{x[0] - y[0]:+.0f}" for x, y in zip(a, b, strict=True))
        cpu_a, cpu_b = (statistics.median(c[0] for c in cells[m]) for m in (tuned, plain))
        rate_a, rate_b = (statistics.median(c[1] for c in cells[m]) for m in (tuned, plain))
        print(
            f"| {name} | {cpu_a:.0f} | {cpu_b:.0f} | {cpu_a - cpu_b:+.0f} ({pairs}) "
            f"| {rate_a:.0f} / {rate_b:.0f} |"
        )
    print(f"| RSS at the end, MiB | {rss[tuned]:.1f} | {rss[plain]:.1f} | | |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5, help="blocks per scenario and mode")
    args = parser.parse_args()
    procs: list[subprocess.Popen] = []
    try:
        up_port = free_port()
        procs.append(subprocess.Popen([PY, str(ROOT / "bench/upstream.py"), str(up_port)]))
        up_url = f"http://127.0.0.1:{up_port}"
        wait_ready_post(up_url)
        targets = {}
        for name, mode in MODES.items():
            proc, url = start(mode, up_url)
            procs.append(proc)
            targets[name] = (url + "/v1/chat/completions", proc.pid)
        results = asyncio.run(measure(targets, args.rounds))
        rss = {name: rss_mib(pid) for name, (_, pid) in targets.items()}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    report(results, rss)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
