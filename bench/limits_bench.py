"""Added latency of an admitted request on the local server's path (Gateway.handle, mock/echo
JSON answer): no limits vs requests_per_minute + tokens_per_minute + tokens_per_day with the
memory store, and with Redis on loopback (a redis-server started here, one Lua round trip).
Interleaved in small blocks so machine drift cancels out; medians per request. Targets:
<= 0.05 ms (memory) and <= 0.3 ms (Redis) added. Then the same over HTTP: three ``edgerelay
serve`` processes (no limits, memory, Redis), one request at a time from one client, p50 of
the whole request; the HTTP figures carry the loopback's noise (a few hundredths of a ms).
Figures only, nothing here is a test.

Usage: python bench/limits_bench.py [--rounds N] [--http-rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgerelay.core import Gateway, Request, load_config
from edgerelay.core.limits import MemoryStore

POLICY = (
    "[policies.anonymous]\nrequests_per_minute = 100000000\n"
    "tokens_per_minute = 1000000000000\ntokens_per_day = 1000000000000\n"
)
BODY = json.dumps(
    {"model": "mock/echo", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
).encode()


def gateway(store=None, limited=True) -> Gateway:
    env = {"EDGERELAY_CONFIG": POLICY} if limited else {}
    return Gateway(load_config(env), None, clock=time.time, new_id=lambda: "x", limit_store=store)


async def one(gw: Gateway, ip: str) -> float:
    """Seconds until the answer is ready (what the client waits for); the response is then
    closed, which settles the counters (after the answer, but in the block's time too)."""
    request = Request("POST", "/v1/chat/completions", "", {}, BODY, client_ip=ip)
    start = time.perf_counter()
    response = await gw.handle(request)
    ready = time.perf_counter() - start
    assert response.status == 200, response.body
    await response.aclose()
    return ready


async def block(gw: Gateway, n: int) -> tuple[float, float]:
    """(ms per request until the answer is ready, ms per request including the close)."""
    start = time.perf_counter()
    ready = 0.0
    for i in range(n):
        ready += await one(gw, f"10.0.{i % 200}.1")
    return ready / n * 1000, (time.perf_counter() - start) / n * 1000


async def main(rounds: int, per_block: int) -> None:
    from edgerelay.stores.redis_store import RedisStore
    from tests.support.redis_server import RedisServer, available

    plain, memory = gateway(limited=False), gateway(MemoryStore())
    server = RedisServer() if available() else None
    redis_gw = gateway(RedisStore.from_url(server.url)) if server else None
    results: dict[str, list[tuple[float, float]]] = {"none": [], "memory": [], "redis": []}
    try:
        for gw in (plain, memory, redis_gw):  # warm up
            if gw is not None:
                await block(gw, 50)
        for _ in range(rounds):
            results["none"].append(await block(plain, per_block))
            results["memory"].append(await block(memory, per_block))
            if redis_gw is not None:
                results["redis"].append(await block(redis_gw, per_block))
        floor = await redis_floor(redis_gw) if redis_gw is not None else None
    finally:
        if redis_gw is not None:
            await redis_gw.limits.limiter.store.aclose()
        if server is not None:
            server.stop()
    print(f"limits: Gateway.handle, mock/echo JSON, median of {rounds} blocks of {per_block}")
    print("  (answer ready: until handle returns; closed: with the settle after the answer)")
    base = [statistics.median(r[i] for r in results["none"]) for i in (0, 1)]
    print(f"  no limits            {base[0]:.4f} ms ready, {base[1]:.4f} ms closed")
    for name, target in (("memory", 0.05), ("redis", 0.3)):
        if not results[name]:
            print(f"  {name:<20} skipped (redis-server not installed)")
            continue
        value = [statistics.median(r[i] for r in results[name]) for i in (0, 1)]
        added = [value[i] - base[i] for i in (0, 1)]
        verdict = "met" if added[0] <= target else "NOT met"
        print(
            f"  {name:<20} +{added[0]:.4f} ms ready (target <= {target} ms: {verdict}), "
            f"+{added[1]:.4f} ms closed"
        )
    if floor is not None:
        print(
            "  what one Redis round trip costs here: a PING through redis-py "
            f"{floor[0]:.4f} ms, the admission script alone {floor[1]:.4f} ms "
            f"(of which Redis itself {floor[2]:.4f} ms, INFO commandstats)"
        )


async def redis_floor(gw: Gateway, n: int = 500) -> tuple[float, float, float]:
    """Medians (ms) of a redis-py PING and of the store's admission call alone on the same
    client, and Redis's own time per admission script: the floor under the Redis row."""
    from edgerelay.core.limits import LimitRequest, client_keys

    assert gw.limits is not None
    limiter = gw.limits.limiter
    store, client = limiter.store, limiter.store.client
    policy = limiter.policy("anonymous")
    request = LimitRequest(client_keys(None, "10.9.9.9"), policy, "mock/echo", 16, 100)
    pings, admits = [], []
    await client.config_resetstat()
    for _ in range(n):
        start = time.perf_counter()
        await client.ping()
        pings.append(time.perf_counter() - start)
        now = time.time()
        counters, slots = limiter._plan(limiter._shape(policy), request, 16, 0, now)
        start = time.perf_counter()
        await store.admit(counters, slots, now)
        admits.append(time.perf_counter() - start)
    stats = await client.info("commandstats")
    server = stats.get("cmdstat_evalsha", {}).get("usec_per_call", 0.0) / 1000
    return statistics.median(pings) * 1000, statistics.median(admits) * 1000, server


def over_http(rounds: int, per_block: int = 200) -> None:
    """The whole request through ``edgerelay serve``, limits off / memory / Redis."""
    import subprocess

    from relay_bench import ENV, PY, ROOT, free_port, wait_ready

    from tests.support.redis_server import RedisServer, available

    server = RedisServer() if available() else None
    stores = {"none": None, "memory": "memory"}
    if server is not None:
        stores["redis"] = server.url
    procs, urls = [], {}
    try:
        for name, store in stores.items():
            port = free_port()
            env = {k: v for k, v in ENV.items() if not k.startswith("EDGERELAY_")}
            if store is not None:
                env.update(EDGERELAY_CONFIG=POLICY, EDGERELAY_STORE=store)
            cmd = [PY, "-m", "edgerelay.server.cli", "serve", "--port", str(port)]
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.DEVNULL))
            urls[name] = f"http://127.0.0.1:{port}"
            wait_ready(urls[name] + "/healthz", procs[-1])
        times = asyncio.run(_http_blocks(urls, rounds, per_block))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        if server is not None:
            server.stop()
    base = statistics.median(times["none"])
    print(f"over HTTP: edgerelay serve, one request at a time, medians of {rounds} blocks' p50")
    print(f"  no limits            {base:.4f} ms")
    for name, target in (("memory", 0.05), ("redis", 0.3)):
        if name in times:
            added = statistics.median(times[name]) - base
            verdict = "met" if added <= target else "NOT met"
            print(f"  {name:<20} +{added:.4f} ms (target <= {target} ms: {verdict})")


async def _http_blocks(urls: dict, rounds: int, per_block: int) -> dict:
    import aiohttp

    times: dict[str, list[float]] = {name: [] for name in urls}
    headers = {"content-type": "application/json"}
    async with aiohttp.ClientSession() as session:

        async def block(url: str, n: int) -> list[float]:
            out = []
            for _ in range(n):
                start = time.perf_counter()
                async with session.post(url, data=BODY, headers=headers) as reply:
                    await reply.read()
                    assert reply.status == 200, reply.status
                out.append(time.perf_counter() - start)
            return out

        for url in urls.values():  # warm the connections and the servers
            await block(url + "/v1/chat/completions", 100)
        for _ in range(rounds):
            for name, url in urls.items():
                taken = await block(url + "/v1/chat/completions", per_block)
                times[name].append(statistics.median(taken) * 1000)
    return times


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-block", type=int, default=200)
    parser.add_argument("--http-rounds", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.per_block))
    if args.http_rounds:
        over_http(args.http_rounds)
