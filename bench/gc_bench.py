"""The server with its garbage collector tuned (the default; edgerelay/server/gc_tuning.py)
against the same server with CPython's own settings (``EDGERELAY_GC=default``), in the same
run: both behind the same loopback upstream and load generator, in interleaved blocks
(relay_bench's harness). Two independent passes, so the difference between them shows the
noise. Figures only, nothing here is a test.

Usage: python bench/gc_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess

# Run as a script, the bench folder is on sys.path: relay_bench is its harness.
from relay_bench import ENV, PY, ROOT, free_port, measure, pct, wait_ready, wait_ready_post

MODES = {"tuned": "tuned", "CPython's": "default"}


def start(mode: str, upstream: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**ENV, "OPENAI_BASE_URL": upstream + "/v1", "OPENAI_API_KEY": "sk-bench"}
    env["EDGERELAY_GC"] = mode
    cmd = [PY, "-m", "edgerelay.server.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/healthz", proc)
    return proc, url


def report(passes: list[dict]) -> None:
    ms = 1000
    names = list(MODES)
    print("\nThe server's garbage collector: tuned (the default) against CPython's settings")
    print("(EDGERELAY_GC=default), same run, interleaved blocks. Two independent passes.\n")
    print(f"| scenario | metric | pass | {names[0]} | {names[1]} | difference |")
    print("|---|---|---|---|---|---|")

    def line(scenario, metric, n, a, b):
        print(f"| {scenario} | {metric} | {n} | {a:.3f} | {b:.3f} | {a - b:+.3f} |")

    for scenario in ("json c=1", "stream c=1", "json c=32", "stream c=32"):
        for n, cells in enumerate(passes, 1):
            d = cells[scenario]["direct"]
            a, b = (cells[scenario][name] for name in names)
            if "c=32" in scenario:
                rate = d["n"] / d["time"]
                line(scenario, "req/s vs direct (x)", n, a["n"] / a["time"] / rate,
                     b["n"] / b["time"] / rate)  # fmt: skip
                line(scenario, "process CPU ms/req", n, a["cpu"] / a["n"] * ms,
                     b["cpu"] / b["n"] * ms)  # fmt: skip
            else:
                line(scenario, "p50 ms", n, pct(a["lat"], 0.5) * ms,
                     pct(b["lat"], 0.5) * ms)  # fmt: skip
    for n, cells in enumerate(passes, 1):
        rss = cells["peak_rss"]
        line("process", "RSS peak MiB", n, rss[names[0]], rss[names[1]])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6, help="rounds per pass")
    args = parser.parse_args()
    procs: list[subprocess.Popen] = []
    try:
        up_port = free_port()
        procs.append(subprocess.Popen([PY, str(ROOT / "bench/upstream.py"), str(up_port)]))
        up_url = f"http://127.0.0.1:{up_port}"
        wait_ready_post(up_url)
        path = "/v1/chat/completions"
        targets, pids = {"direct": up_url + path}, {}
        for name, mode in MODES.items():
            proc, url = start(mode, up_url)
            procs.append(proc)
            targets[name], pids[name] = url + path, proc.pid
        passes = [asyncio.run(measure(targets, pids, args.rounds)) for _ in range(2)]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    report(passes)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
