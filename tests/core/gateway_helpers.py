"""Build a Gateway over a FakeFetch with a fixed clock and counting ids."""

from __future__ import annotations

import itertools
import json

from edgerelay.core import Gateway, Request, load_config
from tests.support.drive import collect, drive
from tests.support.fake_fetch import FakeFetch, FakeResponse

NOW = 1_760_000_000.0


class Waits(list):
    """An injected sleep that records each wait and returns at once."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_gateway(handler=None, env=None, **config_env):
    env = {**(env or {}), **config_env}
    counter = itertools.count(1)
    fetch = FakeFetch(handler or (lambda request: FakeResponse(500)))
    gateway = Gateway(
        load_config(env),
        fetch,
        clock=lambda: NOW,
        new_id=lambda: f"id{next(counter)}",
        sleep=Waits(),
        random=lambda: 0.5,
    )
    return gateway, fetch


def call(gateway, method="POST", path="/v1/chat/completions", body=None, headers=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
    response = drive(gateway.handle(Request(method, path, "", headers or {}, raw)))
    chunks = collect(response.stream) if response.stream is not None else None
    drive(response.aclose())  # as every adapter does once the body is sent
    return response, chunks


def error_of(response) -> dict:
    return json.loads(response.body)["error"]
