"""The server starts without importing its HTTP client library (aiohttp's import is the
largest part of a start): ``/healthz`` needs none, the lifespan start-up imports it off the
event loop, and the first upstream call builds the transport."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import pytest

from edgerelay.core.fetch import FetchRequest
from edgerelay.server.asgi import create_app
from edgerelay.transports.lazy import LazyFetch
from tests.support.loopback import WAIT, Reply

CHECK = """
import asyncio, sys
from edgerelay.server.asgi import create_app

app = create_app({"EDGERELAY_HTTP_CLIENT": sys.argv[1]})
assert sys.argv[1] not in sys.modules, "imported before start-up"
messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
sent = []

async def receive():
    return messages.pop(0)

async def send(message):
    sent.append(message["type"])

asyncio.run(app({"type": "lifespan"}, receive, send))
assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"], sent
assert sys.argv[1] in sys.modules, "not imported by the start-up"
assert not app.fetch.loaded  # imported, but no transport built before a call needs one
"""


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
def test_the_http_client_library_is_imported_by_the_lifespan_start_not_by_create_app(client):
    done = subprocess.run(
        [sys.executable, "-c", CHECK, client], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


def test_before_its_first_call_the_transport_has_no_pool_and_nothing_to_close():
    fetch = create_app({}).fetch
    assert isinstance(fetch, LazyFetch) and not fetch.loaded
    assert fetch.saturated_pools() == []
    asyncio.run(fetch.aclose())
    assert not fetch.loaded


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
def test_the_first_call_builds_the_transport_and_answers(upstream, client):
    upstream.handler = lambda seen: Reply(200, {"content-type": "application/json"}, [b"{}"])
    fetch = create_app({"EDGERELAY_HTTP_CLIENT": client}).fetch

    async def call() -> bytes:
        try:
            answer = await fetch(FetchRequest("GET", upstream.url + "/x", {}, b"", pool="p"))
            body = await answer.read()
            await answer.aclose()
            return body
        finally:
            await fetch.aclose()

    assert asyncio.run(call()) == b"{}"
    assert fetch.loaded


def test_the_served_gateway_answers_health_and_relays(upstream, gateway_for):
    upstream.handler = lambda seen: Reply(200, {"content-type": "application/json"}, [b"{}"])
    gateway = gateway_for({"OPENAI_BASE_URL": upstream.url + "/v1", "OPENAI_API_KEY": "sk-up"})
    assert httpx.get(gateway.url + "/healthz", timeout=WAIT).status_code == 200
    chat = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}
    answer = httpx.post(gateway.url + "/v1/chat/completions", json=chat, timeout=WAIT)
    assert answer.status_code == 200 and answer.json() == {}
    assert gateway.app.fetch.loaded
