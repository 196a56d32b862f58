"""What each feature adds per request on the local server: the CPU time of ``Gateway.handle``
(and of draining its body) with one feature switched on, minus the same request with
everything off, measured side by side in one process against an in-memory OpenAI-compatible
upstream (a small JSON answer, or a 50-chunk stream), so the figure is the gateway's own work.

Rows: identity (a client key, the verified-token cache warm), limits (memory store), the
response cache (a miss: every body new; a hit: one body again), retries configured with no
failure, the Responses API (translated from chat: added per event), and everything at once.
Each sample is the best of several interleaved batches, which keeps a shared machine's drift
out of the differences; CPU time, not wall time. Nothing here is a test.

Usage: python bench/budget_bench.py [--requests N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from upstream import ANSWER, chunk  # noqa: E402

from edgerelay.core import ConfigError, Gateway, Request, load_config  # noqa: E402
from tests.support.fake_fetch import FakeFetch, FakeResponse  # noqa: E402

CLIENT_KEY = "budget-client-key-0123456789"
BASE_ENV = {"OPENAI_API_KEY": "sk-budget", "OPENAI_BASE_URL": "https://upstream.invalid/v1"}
LIMITS = """
[policies.default]
requests_per_minute = 1000000000
tokens_per_minute = 1000000000000
"""
TRANSLATE = """
[providers.openai]
base_url = "https://upstream.invalid/v1"
responses = "translate"
"""


def _last() -> bytes:
    body = json.loads(chunk(1)[6:])
    body["choices"][0].update(delta={}, finish_reason="stop")
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


# As OpenAI streams it: a role chunk, content, a finish_reason, [DONE] (50 events).
CHUNKS = [chunk(i) for i in range(48)] + [_last(), b"data: [DONE]\n\n"]


def upstream(request) -> FakeResponse:
    if b'"stream":true' in (request.body or b""):
        return FakeResponse(200, {"content-type": "text/event-stream"}, list(CHUNKS))
    return FakeResponse(200, {"content-type": "application/json"}, [ANSWER])


def make_gateway(env: dict) -> Gateway:
    from edgerelay.core.limits import MemoryStore

    return Gateway(
        load_config({**BASE_ENV, **env}),
        FakeFetch(upstream),
        clock=time.time,
        new_id=lambda: "budget",
        target="server",
        limit_store=MemoryStore(),  # what the local server uses by default
    )


counter = itertools.count()


def chat(stream: bool, unique: bool = False) -> bytes:
    text = f"hello {next(counter)}" if unique else "hello"
    body = {"model": "gpt-budget", "messages": [{"role": "user", "content": text}]}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def responses(stream: bool) -> bytes:
    body = {"model": "gpt-budget", "input": "hello", "stream": stream, "store": False}
    return json.dumps(body, separators=(",", ":")).encode()


class Case:
    def __init__(
        self,
        env: dict,
        body: Callable[[], bytes],
        path: str = "/v1/chat/completions",
        headers: dict | None = None,
    ) -> None:
        try:
            self.gateway: Gateway | None = make_gateway(env)
        except ConfigError as exc:  # a feature this checkout does not have
            print(f"(skipped: {exc})")
            self.gateway = None
        self.body, self.path, self.headers = body, path, headers or {}

    async def once(self) -> float:
        assert self.gateway is not None
        request = Request("POST", self.path, "", dict(self.headers), self.body(), "203.0.113.7")
        start = time.process_time()
        response = await self.gateway.handle(request)
        events = 0
        if response.stream is not None:
            async for chunk in response.stream:
                events += chunk.count(b"\n\n")
        await response.aclose()
        for _ in range(3):  # let work the request left behind run (the cache stores after the end)
            await asyncio.sleep(0)
        spent = time.process_time() - start
        assert response.status == 200, (self.path, response.status, response.body[:300])
        return spent


async def per_request_ms(case: Case, n: int) -> float:
    spent = 0.0
    for _ in range(n):
        spent += await case.once()
    return spent / n * 1000


async def measure(cases: dict[str, Case], requests: int, rounds: int) -> dict[str, float]:
    cases = {name: case for name, case in cases.items() if case.gateway is not None}
    for case in cases.values():  # warm: imports, caches, first-use paths
        for _ in range(20):
            await case.once()
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for name, case in cases.items():
            best[name] = min(best[name], await per_request_ms(case, requests))
    return best


def build(stream: bool) -> dict[str, Case]:
    key = {"authorization": f"Bearer {CLIENT_KEY}"}
    everything = {
        "EDGERELAY_CLIENT_KEYS": CLIENT_KEY,
        "EDGERELAY_CONFIG": LIMITS,
        "EDGERELAY_CACHE": "on",
    }
    return {
        "off": Case({"EDGERELAY_RETRIES": "0"}, lambda: chat(stream)),
        "identity (client key, cached)": Case(
            {"EDGERELAY_CLIENT_KEYS": CLIENT_KEY, "EDGERELAY_RETRIES": "0"},
            lambda: chat(stream),
            headers=key,
        ),
        "limits (memory store)": Case(
            {"EDGERELAY_CONFIG": LIMITS, "EDGERELAY_RETRIES": "0"}, lambda: chat(stream)
        ),
        "cache miss (memory)": Case(
            {"EDGERELAY_CACHE": "on", "EDGERELAY_RETRIES": "0"}, lambda: chat(stream, True)
        ),
        "cache hit (memory)": Case(
            {"EDGERELAY_CACHE": "on", "EDGERELAY_RETRIES": "0"}, lambda: chat(stream)
        ),
        "retries configured, no failure": Case({"EDGERELAY_RETRIES": "2"}, lambda: chat(stream)),
        "everything on (cache missed)": Case(everything, lambda: chat(stream, True), headers=key),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("Added CPU per request, Gateway.handle + body, in-process (ms; best of rounds)")
    print("| feature | JSON | 50-chunk stream |")
    print("|---|---|---|")
    results = {}
    for stream in (False, True):
        results[stream] = asyncio.run(measure(build(stream), args.requests, args.rounds))
    for name in results[False]:
        if name not in results[True]:
            continue
        if name == "off":
            row = [f"{results[s]['off']:.4f} (base)" for s in (False, True)]
        else:
            row = [f"{results[s][name] - results[s]['off']:+.4f}" for s in (False, True)]
        print(f"| {name} | {row[0]} | {row[1]} |")
    translate = {"EDGERELAY_CONFIG": TRANSLATE, "EDGERELAY_RETRIES": "0"}
    pair = {
        "chat": Case(translate, lambda: chat(True)),
        "responses": Case(translate, lambda: responses(True), path="/v1/responses"),
    }
    got = asyncio.run(measure(pair, args.requests, args.rounds))
    per_event = (got["responses"] - got["chat"]) / len(CHUNKS) * 1000
    print(f"| Responses API over chat, per upstream event (µs) | | {per_event:+.1f} |")


if __name__ == "__main__":
    main()
