"""A provider whose connections are all busy (slow uploads, long streams) answers further
requests with a prompt 504 in the route's shape instead of queueing them without end; the
other providers keep their own pools, and /readyz says 503 while a pool is full."""

from __future__ import annotations

import httpx
import pytest

from tests.support.loopback import WAIT, Reply

SSE = {"content-type": "text/event-stream"}
STREAM = [b"event: ping\ndata: {}\n\n", b"event: message_stop\ndata: {}\n\n"]
CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}


def answer(seen):
    if seen.path.startswith("/v1/messages"):  # Anthropic: a stream held open by the test
        return Reply(200, SSE, STREAM, lockstep=True)
    return Reply(200, {"content-type": "application/json"}, [b'{"ok":1}'])


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_a_full_pool_answers_504_at_once_and_spares_the_other_providers(
    upstream, gateway_for, http_client
):
    upstream.handler = answer
    env = {
        "ANTHROPIC_BASE_URL": upstream.url,
        "ANTHROPIC_API_KEY": "sk-ant-up",
        "OPENAI_BASE_URL": upstream.url + "/v1",
        "EDGERELAY_POOL_SIZE": "1",
        "EDGERELAY_CONNECT_TIMEOUT": "0.2",
    }
    gateway = gateway_for(env, http_client)
    url = gateway.url + "/anthropic/v1/messages"
    assert httpx.get(gateway.url + "/readyz", timeout=WAIT).status_code == 200

    with httpx.stream("POST", url, json=MESSAGES, timeout=WAIT) as held:
        received = held.iter_raw()  # kept: a dropped iterator closes the response
        assert next(received) == STREAM[0]  # the one anthropic connection is in use

        waited = httpx.post(url, json=MESSAGES, timeout=WAIT)
        assert waited.status_code == 504
        assert waited.json()["type"] == "error"  # Anthropic's own shape on its route
        assert waited.json()["error"]["message"] == "The anthropic upstream did not answer in time."

        translated = httpx.post(
            gateway.url + "/v1/chat/completions",
            json={**CHAT, "model": "anthropic/claude-x"},
            timeout=WAIT,
        )
        assert translated.status_code == 504
        assert translated.json()["error"]["code"] == "timeout"  # OpenAI's shape

        ready = httpx.get(gateway.url + "/readyz", timeout=WAIT)
        assert ready.status_code == 503
        assert ready.json() == {"status": "saturated", "pools": ["anthropic"]}
        assert httpx.get(gateway.url + "/healthz", timeout=WAIT).status_code == 200
        other = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=WAIT)
        assert other.status_code == 200  # OpenAI has its own pool
        upstream.release()
        assert b"".join(received) == STREAM[1]

    assert httpx.get(gateway.url + "/readyz", timeout=WAIT).status_code == 200
    assert len([s for s in upstream.seen if s.path == "/v1/messages"]) == 1
