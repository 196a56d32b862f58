"""The per-request log record: its fields, the request id, levels, and no secret in it."""

from __future__ import annotations

import json

from edgerelay.core import Gateway, Request, load_config
from edgerelay.core.limits import MemoryStore
from edgerelay.core.requestlog import REQUEST_ID_HEADER, request_id, route_name, with_request_id
from tests.support.drive import collect, drive
from tests.support.fake_fetch import FakeFetch, FakeResponse

CANARY = "sk-canary-0123456789"
CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi " + CANARY}]}


def gateway(env=None, handler=None):
    # No retries: the fake upstream's 500 is the answer (a retry would wait on a real clock).
    config = load_config({"OPENAI_API_KEY": CANARY, "EDGERELAY_RETRIES": "0", **(env or {})})
    fetch = FakeFetch(handler or (lambda r: FakeResponse(500)))
    return Gateway(
        config,
        fetch,
        clock=lambda: 1_760_000_000.0,
        new_id=lambda: "id",
        new_request_id=lambda: "fresh-request-id",
        limit_store=MemoryStore(),
    )


def handle(gw, body, path="/v1/chat/completions", headers=None, query=""):
    raw = json.dumps(body).encode() if body is not None else b""
    request = Request("POST", path, query, headers or {}, raw, client_ip="203.0.113.5")
    response = drive(gw.handle(request))
    if response.stream is not None:
        collect(response.stream)
    drive(response.aclose())
    return response


def test_a_line_has_the_fields_and_usage_after_the_stream():
    gw = gateway({"EDGERELAY_CONFIG": "[policies.anonymous]\ntokens_per_day = 100000\n"})
    response = handle(gw, {**CHAT, "stream": True, "max_tokens": 50})
    log = json.loads(response.log.line())
    assert log["request_id"] == "fresh-request-id"
    assert (log["route"], log["provider"], log["model"], log["model_used"]) == (
        "/v1/chat/completions",
        "mock",
        "mock/echo",
        "echo",  # the name the provider was asked for
    )
    assert (log["status"], log["limit"], log["policy"], log["attempts"]) == (
        200,
        "admitted",
        "anonymous",
        1,  # mock/echo is an in-process upstream: one attempt
    )
    assert log["usage"]["output"] >= 1  # estimated: the client did not ask for usage
    assert set(log) >= {"time", "ttfb_ms", "duration_ms", "bytes_out", "cache", "error_type"}
    assert (REQUEST_ID_HEADER, "fresh-request-id") in with_request_id(response)


def test_an_upstream_call_is_an_attempt_and_its_request_id_is_noted():
    answer = json.dumps({"choices": [], "usage": {"prompt_tokens": 2}}).encode()
    gw = gateway(
        handler=lambda r: FakeResponse(
            200, {"content-type": "application/json", "x-request-id": "req_up_1"}, [answer]
        )
    )
    response = handle(gw, {**CHAT, "model": "gpt-4.1"})
    log = json.loads(response.log.line())
    assert (log["attempts"], log["upstream_request_id"], log["provider"]) == (
        1,
        "req_up_1",
        "openai",
    )


def test_a_refusal_is_logged_with_its_error_type():
    gw = gateway({"EDGERELAY_CONFIG": "[policies.anonymous]\nrequests_per_minute = 1\n"})
    handle(gw, CHAT)
    response = handle(gw, CHAT)
    log = json.loads(response.log.line())
    assert (log["status"], log["limit"], log["error_type"]) == (
        429,
        "refused",
        "rate_limit_exceeded",
    )
    assert response.log.wanted("errors") and not response.log.wanted("off")


def test_levels():
    gw = gateway()
    ok = handle(gw, CHAT)
    assert ok.log.wanted("all") and not ok.log.wanted("errors") and not ok.log.wanted("off")


def test_a_well_formed_incoming_id_is_kept_and_anything_else_replaced():
    assert request_id({REQUEST_ID_HEADER: "trace-abc-123"}, lambda: "new-0000") == "trace-abc-123"
    for bad in ("short", "has space in it", "x" * 200, 'quote"inside1', "line\nbreak123"):
        assert request_id({REQUEST_ID_HEADER: bad}, lambda: "new-0000") == "new-0000"


def test_routes_carry_nothing_a_caller_chose():
    assert route_name("/gemini/v1beta/models/gemini-2.5-flash:generateContent") == "gemini"
    assert route_name("/openai/v1/chat/completions") == "openai"
    assert route_name("/%2e%2e/etc") == "other"


def test_no_secret_reaches_a_line():
    gw = gateway()
    lines = [
        handle(gw, CHAT, headers={"authorization": "Bearer " + CANARY}).log.line(),
        handle(
            gw,
            {"contents": [{"parts": [{"text": CANARY}]}]},
            path="/gemini/v1beta/models/gemini-2.5-flash:generateContent",
            headers={"x-goog-api-key": CANARY},
            query="key=" + CANARY,
        ).log.line(),
        handle(gw, {**CHAT, "model": "gpt-4.1"}).log.line(),
    ]
    for line in lines:
        assert CANARY not in line
        json.loads(line)
