"""What an upstream may answer that must not reach the client as sent: a status that is
neither success nor error, or a number JSON cannot carry."""

from __future__ import annotations

import json

import pytest

from edgerelay.core.safejson import dumps
from tests.core.gateway_helpers import call, error_of, make_gateway
from tests.support.fake_fetch import FakeResponse

CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}
ENV = {"OPENAI_API_KEY": "sk-up", "ANTHROPIC_API_KEY": "sk-ant-up"}


@pytest.mark.parametrize("status", [101, 103, 301, 302, 307])
@pytest.mark.parametrize(
    ("path", "body", "shape"),
    [
        ("/v1/chat/completions", CHAT, "openai"),
        ("/v1/chat/completions", {**CHAT, "model": "anthropic/claude-x"}, "openai"),
        ("/anthropic/v1/messages", {"model": "claude-x", "max_tokens": 1}, "anthropic"),
    ],
)
def test_an_informational_or_redirect_status_is_502(status, path, body, shape):
    answer = FakeResponse(status, {"location": "https://elsewhere.test/"}, [b"switching"])
    gateway, fetch = make_gateway(lambda request: answer, ENV)
    response, _ = call(gateway, path=path, body=body)
    assert response.status == 502
    assert str(status) in json.loads(response.body)["error"]["message"]
    if shape == "anthropic":
        assert json.loads(response.body)["type"] == "error"
    assert "location" not in dict(response.headers)
    assert fetch.responses[0].closed  # the upstream connection is let go


def test_a_translated_answer_with_an_infinite_number_is_502_never_infinity():
    answer = (
        b'{"id":"msg_1","type":"message","role":"assistant","model":"claude-x",'
        b'"content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn",'
        b'"usage":{"input_tokens":1e400,"output_tokens":1}}'
    )
    gateway, _ = make_gateway(lambda request: FakeResponse(200, {}, [answer]), ENV)
    response, _ = call(gateway, body={**CHAT, "model": "anthropic/claude-x"})
    assert response.status == 502
    assert b"Infinity" not in response.body
    assert error_of(response)["code"] == "bad_gateway"


def test_dumps_never_writes_nan_or_infinity():
    for value in (float("inf"), float("-inf"), float("nan")):
        with pytest.raises(ValueError):
            dumps({"x": value})


def test_a_non_stream_answer_past_the_response_limit_is_502_and_reading_stops():
    chunks = [b"x" * 1000] * 50
    answer = FakeResponse(200, {"content-type": "application/json"}, chunks)
    env = {**ENV, "EDGERELAY_MAX_RESPONSE_BYTES": "4096"}
    gateway, _ = make_gateway(lambda request: answer, env)
    response, _ = call(gateway, body={**CHAT, "model": "anthropic/claude-x"})
    assert response.status == 502
    error = error_of(response)
    assert error["code"] == "response_too_large"
    assert "EDGERELAY_MAX_RESPONSE_BYTES" in error["message"]
    assert answer.read_chunks == 5  # stopped at the limit, not read to the end
    assert answer.closed
