"""Streams that break after the first byte, through the real server (uvicorn, aiohttp to a
loopback upstream that drops its connection mid-event): the client reads the terminal error in
the protocol of the route it called, then a normally finished body; no traceback is logged."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from edgerelay.core.observer import events
from tests.core.test_observer import COMPLETE, FIRST_EVENT, anthropic
from tests.support.loopback import WAIT, Reply

SSE = {"content-type": "text/event-stream"}
GEMINI_JSON = {"content-type": "application/json; charset=UTF-8"}


def env_for(upstream) -> dict:
    return {
        "OPENAI_BASE_URL": upstream.url + "/v1",
        "OPENAI_API_KEY": "sk-gateway",
        "ANTHROPIC_BASE_URL": upstream.url,
        "ANTHROPIC_API_KEY": "ak-gateway",
        "GEMINI_BASE_URL": upstream.url,
        "GEMINI_API_KEY": "g-gateway",
    }


def cut_reply(protocol: str, headers=SSE) -> Reply:
    """The first event, half of the second, then the connection drops."""
    data, first = COMPLETE[protocol], FIRST_EVENT[protocol]
    return Reply(200, headers, [data[:first], data[first : first + 12], b"never"], cut_after=2)


def post(gateway, path: str) -> bytes:
    # read() returns only when the body was finished normally (a cut body raises here).
    with httpx.stream("POST", gateway.url + path, content=b"{}", timeout=WAIT) as response:
        assert response.status_code == 200
        return response.read()


@pytest.mark.parametrize("client", ["aiohttp", "httpx"])
def test_openai_passthrough_chat_stream_cut_mid_way(upstream, gateway_for, capfd, client):
    upstream.handler = lambda seen: cut_reply("chat")
    gateway = gateway_for(env_for(upstream), client)
    body = post(gateway, "/openai/v1/chat/completions")
    parsed = events(body)
    assert json.loads(parsed[0].data)["choices"]
    assert "broke off" in json.loads(parsed[-1].data)["error"]["message"]
    assert all(e.data != "[DONE]" for e in parsed)
    assert "Traceback" not in capfd.readouterr().err


def test_responses_passthrough_cut_mid_way_ends_with_response_failed(upstream, gateway_for, capfd):
    upstream.handler = lambda seen: cut_reply("responses")
    gateway = gateway_for(env_for(upstream))
    last = events(post(gateway, "/openai/v1/responses"))[-1]
    assert last.event == "response.failed"
    assert json.loads(last.data)["response"]["error"]["code"] == "server_error"
    assert "Traceback" not in capfd.readouterr().err


def test_anthropic_passthrough_cut_mid_way_ends_with_an_error_event(upstream, gateway_for, capfd):
    upstream.handler = lambda seen: cut_reply("anthropic")
    gateway = gateway_for(env_for(upstream))
    last = events(post(gateway, "/anthropic/v1/messages"))[-1]
    assert last.event == "error"
    assert json.loads(last.data)["error"]["type"] == "api_error"
    assert "Traceback" not in capfd.readouterr().err


def test_gemini_passthrough_cut_mid_way_sse_and_json_array(upstream, gateway_for, capfd):
    model = "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    gateway = gateway_for(env_for(upstream))
    upstream.handler = lambda seen: cut_reply("gemini")
    last = json.loads(events(post(gateway, model + "?alt=sse"))[-1].data)
    assert last["error"]["status"] == "UNAVAILABLE"
    upstream.handler = lambda seen: cut_reply("gemini-json", GEMINI_JSON)
    array = json.loads(post(gateway, model))  # still one valid JSON array
    assert array[0]["candidates"] and array[-1]["error"]["code"] == 502
    assert "Traceback" not in capfd.readouterr().err


def test_translated_stream_cut_mid_way_raises_in_the_openai_sdk(upstream, gateway_for, capfd):
    frames = [
        anthropic("message_start", message={"id": "msg_1", "model": "c", "content": []}),
        anthropic("content_block_start", index=0, content_block={"type": "text", "text": ""})
        + anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"}),
        b"event: content_block_delta\ndata: {",
        b"never",
    ]
    upstream.handler = lambda seen: Reply(200, SSE, frames, cut_after=3)
    gateway = gateway_for(env_for(upstream))
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="anthropic/claude-x", messages=[{"role": "user", "content": "x"}], stream=True
    )
    text = ""
    with pytest.raises(openai.APIError, match="broke off"):
        for chunk in stream:
            text += chunk.choices[0].delta.content or ""
    assert text == "Hi"
    assert "Traceback" not in capfd.readouterr().err


def test_a_chat_stream_ending_cleanly_without_done_raises_in_the_openai_sdk(upstream, gateway_for):
    data = COMPLETE["chat"][: FIRST_EVENT["chat"]]
    upstream.handler = lambda seen: Reply(200, SSE, [data])  # a clean end, but no [DONE]
    gateway = gateway_for(env_for(upstream))
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError, match="ended before the answer was complete"):
        for _ in stream:
            pass
