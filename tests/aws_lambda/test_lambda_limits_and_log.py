"""On Lambda: one JSON log line per request on stdout, the request id returned; limits need
EDGERELAY_STORE (memory would be per instance), with a 503 naming it otherwise."""

from __future__ import annotations

import json

import pytest

from functions.aws_lambda.handler import BufferedHandler
from tests.aws_lambda.lambda_events import KINDS, chat, event
from tests.support.fake_fetch import FakeFetch, FakeResponse

LIMITED = "[policies.anonymous]\nrequests_per_minute = 1\n"
CANARY = "sk-canary-lambda-42"


class Context:
    remaining_ms = 30_000
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def make(env):
    # Lambda refuses anonymous model calls unless told: these tests are about limits and logs.
    env = {"EDGERELAY_ALLOW_ANONYMOUS": "true", **env}
    return BufferedHandler.from_env(env, FakeFetch(lambda r: FakeResponse()))


@pytest.mark.parametrize("kind", KINDS)
def test_one_line_on_stdout_with_the_returned_request_id(kind, capsys):
    handler = make({"OPENAI_API_KEY": CANARY})
    try:
        result = handler(event(kind, chat(text=CANARY, stream=False)), Context())
    finally:
        handler.close()
    out = capsys.readouterr().out
    (line,) = out.splitlines()
    entry = json.loads(line)
    headers = {k.lower(): v for k, v in result["headers"].items()}
    assert entry["request_id"] == headers["x-edgerelay-request-id"]
    assert (entry["status"], entry["route"], entry["model"]) == (
        200,
        "/v1/chat/completions",
        "mock/echo",
    )
    assert entry["bytes_out"] == len(result["body"])
    assert CANARY not in out


def test_limits_without_a_store_are_a_503_naming_it(capsys):
    handler = make({"EDGERELAY_CONFIG": LIMITED, "EDGERELAY_LOG": "off"})
    try:
        result = handler(event("http-api-v2", chat(stream=False)), Context())
    finally:
        handler.close()
    assert result["statusCode"] == 503
    message = json.loads(result["body"])["error"]["message"]
    assert "EDGERELAY_STORE" in message and "redis" in message
    assert capsys.readouterr().out == ""  # EDGERELAY_LOG=off


def test_memory_is_refused_as_a_lambda_store():
    handler = make({"EDGERELAY_CONFIG": LIMITED, "EDGERELAY_STORE": "memory"})
    try:
        result = handler(event("http-api-v2", chat(stream=False)), Context())
    finally:
        handler.close()
    assert result["statusCode"] == 503
    assert "EDGERELAY_STORE" in json.loads(result["body"])["error"]["message"]


def test_limits_key_on_the_source_ip_from_the_request_context(redis_url):
    handler = make({"EDGERELAY_CONFIG": LIMITED, "EDGERELAY_STORE": redis_url})
    try:
        first = event("http-api-v2", chat(stream=False))
        spoofed = event("http-api-v2", chat(stream=False))
        spoofed["headers"]["x-forwarded-for"] = "203.0.113.99"
        other = event("http-api-v2", chat(stream=False))
        other["requestContext"]["http"]["sourceIp"] = "198.51.100.200"
        statuses = [handler(e, Context())["statusCode"] for e in (first, spoofed, other)]
    finally:
        handler.close()
    assert statuses == [200, 429, 200]
