"""The gateway as it is against the gateway at an earlier commit, in the same run.

Figures from one day cannot be compared with another day's on a shared machine (this one has
been 3-5x slower on some days than others), so both gateways run side by side here: the earlier
one is unpacked from git (``git archive``) and started from its own source tree, both behind
the same loopback upstream and load generator, in interleaved blocks (relay_bench's harness).
Two independent passes are printed, so the difference between passes shows the noise.

The default baseline, 65c7fb7, is the last commit before the code was reorganised into one
package with one provider contract; pass ``--rev`` for another. Each gateway runs with its own
defaults (today's writes one log line per request, the earlier one wrote none).

Usage: python bench/baseline_bench.py [--rev REV] [--now REV] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

# Run as a script, the bench folder is on sys.path: relay_bench is its harness.
from relay_bench import (
    ENV,
    PY,
    ROOT,
    free_port,
    measure,
    pct,
    wait_ready,
    wait_ready_post,
)

DEFAULT_REV = "65c7fb7"
# How each tree starts its server: the module path changed with the one-package layout.
NOW = ["-m", "edgerelay.server.cli", "serve"]
THEN = {"server/cli.py": ["-m", "server.cli", "serve"]}


def unpack(rev: str, into: Path) -> list[str]:
    """Unpack ``rev`` into ``into``; the arguments that start its server."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    for marker, args in THEN.items():
        if (into / marker).exists():
            return args
    # The one-package layout installs core/ as edgerelay.core; run from the tree, a link
    # stands in for that install.
    (into / "edgerelay" / "core").symlink_to(into / "core", target_is_directory=True)
    return NOW


def start(tree: Path, args: list[str], upstream: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**ENV, "OPENAI_BASE_URL": upstream + "/v1", "OPENAI_API_KEY": "sk-bench"}
    env.pop("PYTHONPATH", None)
    cmd = [PY, *args, "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/healthz", proc)
    return proc, url


def report(passes: list[dict], rev: str, now: str) -> None:
    ms = 1000
    print(f"\nThe gateway at {now} against the gateway at {rev} (same run, interleaved blocks)")
    print("Added = through the gateway minus direct. Two independent passes.\n")
    print(f"| scenario | metric | pass | {now} | {rev} | difference |")
    print("|---|---|---|---|---|---|")

    def line(name, metric, n, now, then):
        print(f"| {name} | {metric} | {n} | {now:.3f} | {then:.3f} | {now - then:+.3f} |")

    for name in passes[0]:
        if name == "peak_rss":
            continue
        for n, cells in enumerate(passes, 1):
            d, now, then = cells[name]["direct"], cells[name]["now"], cells[name]["then"]
            base = pct(d["lat"], 0.5)
            line(name, "added p50 ms", n, (pct(now["lat"], 0.5) - base) * ms,
                 (pct(then["lat"], 0.5) - base) * ms)  # fmt: skip
            if "stream" in name:
                base = pct(d["ttfb"], 0.5)
                line(name, "added TTFB p50 ms", n, (pct(now["ttfb"], 0.5) - base) * ms,
                     (pct(then["ttfb"], 0.5) - base) * ms)  # fmt: skip
            if "c=32" in name:
                rate = d["n"] / d["time"]
                line(name, "req/s vs direct (x)", n, now["n"] / now["time"] / rate,
                     then["n"] / then["time"] / rate)  # fmt: skip
            line(name, "process CPU ms/req", n, now["cpu"] / now["n"] * ms,
                 then["cpu"] / then["n"] * ms)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rev", default=DEFAULT_REV, help="the earlier commit")
    parser.add_argument("--now", help="a commit to stand for now (default: this checkout)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per pass")
    args = parser.parse_args()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as scratch:
        then_tree, now_tree = Path(scratch, "then"), Path(scratch, "now")
        then_args = unpack(args.rev, then_tree)
        now_args = unpack(args.now, now_tree) if args.now else NOW
        if not args.now:
            now_tree = ROOT
        try:
            up_port = free_port()
            upstream = subprocess.Popen([PY, str(ROOT / "bench/upstream.py"), str(up_port)])
            procs.append(upstream)
            up_url = f"http://127.0.0.1:{up_port}"
            wait_ready_post(up_url)
            now, now_url = start(now_tree, now_args, up_url)
            then, then_url = start(then_tree, then_args, up_url)
            procs += [now, then]
            path = "/v1/chat/completions"
            targets = {"direct": up_url + path, "now": now_url + path, "then": then_url + path}
            pids = {"now": now.pid, "then": then.pid}
            passes = [asyncio.run(measure(targets, pids, args.rounds)) for _ in range(2)]
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(10)
    report(passes, args.rev, args.now or "now")
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
