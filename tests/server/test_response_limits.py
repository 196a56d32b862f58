"""An upstream answer that expands without end (a gzip bomb) is cut at
EDGERELAY_MAX_RESPONSE_BYTES, counted after decompression, with a 502 in the route's shape."""

from __future__ import annotations

import gzip

import httpx
import pytest

from tests.support.loopback import WAIT, Reply

CHAT = {"model": "anthropic/claude-x", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_a_gzip_bomb_is_cut_at_the_limit(upstream, gateway_for, http_client):
    bomb = gzip.compress(b"0" * (8 * 1024 * 1024), compresslevel=9)  # 8 MiB from ~8 kB
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    upstream.handler = lambda seen: Reply(
        200, headers, [bomb[i : i + 4096] for i in range(0, len(bomb), 4096)]
    )
    env = {
        "ANTHROPIC_BASE_URL": upstream.url,
        "ANTHROPIC_API_KEY": "sk-ant-up",
        "EDGERELAY_MAX_RESPONSE_BYTES": str(256 * 1024),
    }
    gateway = gateway_for(env, http_client)
    response = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, timeout=WAIT)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "response_too_large"
    assert httpx.get(gateway.url + "/healthz", timeout=WAIT).status_code == 200
