"""Calls to a real Gateway with the response cache on, shared by the cache tests of the Worker's
Durable Object bookkeeping (CPython and Pyodide alike: standard library and core only)."""

from __future__ import annotations

import json

from edgerelay.core import Gateway, Request, load_config

ADMIN = "admin-key-for-durable-cache-0123"
CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "kept in the object"}]}


class Clock:
    """An injected clock a test moves by setting ``now``."""

    def __init__(self) -> None:
        self.now = 1_760_000_000.0

    def __call__(self) -> float:
        return self.now


def worker_gateway(cache_store, clock) -> Gateway:
    """A Worker-target Gateway, anonymous calls allowed, every answer cached, admin routes on."""
    env = {
        "EDGERELAY_ALLOW_ANONYMOUS": "true",
        "EDGERELAY_CACHE": "on",
        "EDGERELAY_ADMIN_KEY": ADMIN,
    }
    return Gateway(
        load_config(env),
        None,
        clock=clock,
        new_id=lambda: "id",
        target="worker",
        cache_store=cache_store,
    )


async def call(gw, method="POST", path="/v1/chat/completions", body=None, admin=False):
    """The answer, its body read whole (``body`` set from a stream) and the response closed."""
    headers = {"authorization": f"Bearer {ADMIN}"} if admin else {}
    raw = json.dumps(body).encode() if body is not None else b""
    response = await gw.handle(Request(method, path, "", headers, raw))
    if response.stream is not None:
        response.body = b"".join([c async for c in response.stream])
    await response.aclose()
    return response


def cache_status(response) -> str | None:
    return dict(response.headers).get("x-edgerelay-cache")
