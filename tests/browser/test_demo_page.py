"""The browser demo page in headless Chromium, served from another origin than the gateway (so
CORS is exercised), streaming from a lock-step fake upstream: the page must show token k before
the upstream sends token k+1."""

from __future__ import annotations

import json
import os

import pytest

from tests.browser.conftest import CHROMIUM
from tests.support.loopback import WAIT, Reply

# CI installs Chromium (.ci/run); only a developer's machine without it may skip.
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed"
)
SSE = {"content-type": "text/event-stream; charset=utf-8"}


def frame(delta: dict, finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def test_the_page_streams_token_by_token_through_the_gateway(
    upstream, gateway_for, page_origin, browser
):
    words = ["Keys", " stay", " on", " the", " server."]
    frames = [frame({"role": "assistant", "content": ""})]
    frames += [frame({"content": w}) for w in words]
    frames += [frame({}, "stop"), b"data: [DONE]\n\n"]
    upstream.handler = lambda seen: Reply(200, SSE, frames, lockstep=True)
    gateway = gateway_for({"OPENAI_BASE_URL": upstream.url + "/v1", "OPENAI_API_KEY": "sk-srv"})

    page = browser.new_page()
    page.goto(f"{page_origin}/index.html?gateway={gateway.url}&model=gpt-x")
    page.click("#send")
    upstream.release()  # the empty role chunk carries no text: let the first word go
    shown = ""
    for word in words:
        shown += word
        # Token k is on screen while the upstream still holds token k+1.
        page.wait_for_function(
            "text => document.getElementById('output').textContent === text",
            arg=shown,
            timeout=WAIT * 1000,
        )
        upstream.release()
    upstream.release()
    page.wait_for_selector("body[data-state=done]", timeout=WAIT * 1000)
    assert page.text_content("#output") == "Keys stay on the server."
    seen = upstream.seen[0]
    assert seen.headers["Authorization"] == "Bearer sk-srv"  # the page never had a key
    assert json.loads(seen.body)["stream"] is True


def test_mock_echo_from_the_page_served_by_the_gateway(gateway_for, browser):
    gateway = gateway_for({})
    page = browser.new_page()
    page.goto(gateway.url + "/")  # the local server serves the demo at /
    page.fill("#prompt", "echo me please")
    page.click("#send")
    page.wait_for_selector("body[data-state=done]", timeout=WAIT * 1000)
    assert page.text_content("#output") == "echo me please"
    assert "3 tokens" in page.text_content("#status")


def test_gateway_errors_reach_the_page_readably(gateway_for, page_origin, browser):
    gateway = gateway_for({})  # no OpenAI key configured: a 503 naming the variable
    page = browser.new_page()
    page.goto(f"{page_origin}/index.html?gateway={gateway.url}&model=gpt-4.1")
    page.click("#send")
    page.wait_for_selector("body[data-state=error]", timeout=WAIT * 1000)
    assert "OPENAI_API_KEY" in page.text_content("#status")


def test_stop_in_the_page_cancels_the_upstream_request(upstream, gateway_for, page_origin, browser):
    frames = [frame({"role": "assistant", "content": "first"})] + [frame({"content": " more"})] * 20
    upstream.handler = lambda seen: Reply(200, SSE, frames, lockstep=True)
    gateway = gateway_for({"OPENAI_BASE_URL": upstream.url + "/v1"})
    page = browser.new_page()
    page.goto(f"{page_origin}/index.html?gateway={gateway.url}&model=gpt-x")
    page.click("#send")
    page.wait_for_function("document.getElementById('output').textContent === 'first'")
    page.click("#stop")  # AbortController: the browser drops the connection
    page.wait_for_selector("body[data-state=stopped]", timeout=WAIT * 1000)
    # The upstream is parked on the next chunk; only the gateway closing it ends that wait.
    assert upstream.cancelled.wait(WAIT)
    assert not upstream.finished.is_set()
