"""The response cache with the attempt loop behind it: a MISS's upstream call is retried like
any other (CPython's event loop: the cache runs its upstream call as a task)."""

from __future__ import annotations

import itertools
import json

from edgerelay.core import Gateway, load_config
from tests.cache.test_gateway_cache import KEY, Clock, Upstream, body, header, request, run, whole


class Waits(list):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Flaky(Upstream):
    """The first ``failures`` calls answer 503, the rest the stream."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def __call__(self, request):
        self.status = 503 if len(self.requests) < self.failures else 200
        return await super().__call__(request)


def gateway(upstream, waits, **env):
    ids = itertools.count(1)
    config = load_config({"OPENAI_API_KEY": KEY, "EDGERELAY_CACHE": "on", **env})
    return Gateway(
        config,
        upstream,
        clock=Clock(),
        new_id=lambda: f"id{next(ids)}",
        sleep=waits,
        random=lambda: 0.5,
    )


def test_a_miss_is_retried_and_its_answer_then_served_from_the_cache():
    async def go():
        upstream, waits = Flaky(failures=1), Waits()
        gw = gateway(upstream, waits)
        first = await gw.handle(request(body()))
        first_body = await whole(first)
        again = await gw.handle(request(body()))
        assert (first.status, again.status) == (200, 200)
        assert header(first, "x-edgerelay-attempts") == "2"
        assert header(again, "x-edgerelay-cache") == "HIT"
        assert json.loads(await whole(again)) == json.loads(first_body)
        assert (len(upstream.requests), waits) == (2, [0.25])

    run(go())
