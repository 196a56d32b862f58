"""Limits on POST /v1/responses: refused in OpenAI's error shape before any upstream call, the
gateway's rate-limit headers on answers, usage settled from the Responses answer and stream."""

from __future__ import annotations

import itertools
import json

from edgerelay.core import Gateway, Request, load_config
from edgerelay.core.limits import MemoryStore
from tests.support.drive import collect, drive
from tests.support.fake_fetch import FakeFetch, FakeResponse

KEYS = {"OPENAI_API_KEY": "sk-owner-openai-key"}
JSON_TYPE = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream"}
BODY = {"model": "gpt-4.1", "input": "hi", "max_output_tokens": 100}
ANSWER = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "output": [],
    "usage": {"input_tokens": 6, "output_tokens": 4, "total_tokens": 10},
}


def gateway(policy, handler):
    env = {**KEYS, "EDGERELAY_CONFIG": f"[policies.anonymous]\n{policy}\n"}
    ids = itertools.count(1)
    fetch = FakeFetch(handler)
    gw = Gateway(
        load_config(env),
        fetch,
        clock=lambda: 1_760_000_040.0,
        new_id=lambda: f"id{next(ids)}",
        limit_store=MemoryStore(),
    )
    return gw, fetch


def send(gw, body):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = Request("POST", "/v1/responses", "", {}, raw, client_ip="198.51.100.7")
    return drive(gw.handle(request))


def finish(response):
    out = b"".join(collect(response.stream)) if response.stream is not None else response.body
    drive(response.aclose())
    return out


def test_responses_are_limited_and_refused_in_openais_shape():
    gw, fetch = gateway(
        "requests_per_minute = 1",
        lambda r: FakeResponse(200, JSON_TYPE, [json.dumps(ANSWER).encode()]),
    )
    first = send(gw, BODY)
    assert first.status == 200
    assert dict(first.headers)["x-ratelimit-remaining-requests"] == "0"
    finish(first)
    refused = send(gw, BODY)
    assert refused.status == 429
    assert json.loads(refused.body)["error"]["code"] == "rate_limit_exceeded"
    assert len(fetch.requests) == 1


def test_responses_usage_is_settled_from_the_answer_and_the_stream():
    events = [
        {"type": "response.created", "sequence_number": 0, "response": {**ANSWER, "usage": None}},
        {"type": "response.completed", "sequence_number": 1, "response": ANSWER},
    ]
    stream = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]

    def upstream(request):
        if json.loads(request.body).get("stream"):
            return FakeResponse(200, SSE, stream)
        return FakeResponse(200, JSON_TYPE, [json.dumps(ANSWER).encode()])

    gw, _ = gateway("tokens_per_minute = 1000", upstream)
    finish(send(gw, BODY))
    streamed = send(gw, {**BODY, "stream": True})
    assert dict(streamed.headers)["x-ratelimit-remaining-tokens"] == str(1000 - 10 - 100)
    # Metered by a hook of the stream's one observer, not by a second pass over its bytes.
    assert [type(hook).__name__ for hook in streamed.observer._hooks] == ["UsageHook"]
    assert finish(streamed) == b"".join(stream)
    nxt = send(gw, BODY)
    assert dict(nxt.headers)["x-ratelimit-remaining-tokens"] == str(1000 - 20 - 100)
    finish(nxt)


def test_a_request_the_route_refuses_as_invalid_is_not_counted():
    # As on /v1/chat/completions: a request is counted once the route has checked it, so a
    # 400 costs the client nothing of its request budget.
    gw, fetch = gateway(
        "requests_per_minute = 1",
        lambda r: FakeResponse(200, JSON_TYPE, [json.dumps(ANSWER).encode()]),
    )
    for invalid in (
        {"input": "hi"},  # no model
        {**BODY, "input": 5},
        {**BODY, "stream": "yes"},
        {**BODY, "background": True},
    ):
        refused = send(gw, invalid)
        assert refused.status == 400, refused.body
        assert "x-ratelimit-remaining-requests" not in dict(refused.headers)
    assert send(gw, b"{not json").status == 400
    answered = send(gw, BODY)
    assert answered.status == 200, answered.body
    assert dict(answered.headers)["x-ratelimit-remaining-requests"] == "0"
    finish(answered)
    assert len(fetch.requests) == 1
