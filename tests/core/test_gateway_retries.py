"""The attempt loop in ``Gateway.handle``: retries, fallbacks, held streams, deadlines, over an
in-memory Fetch with a fixed clock, a recording sleep and random 0.5 (also run in Pyodide)."""

import json

from edgerelay.core import Gateway, load_config
from edgerelay.core.fetch import FetchError
from edgerelay.core.limits import MemoryStore
from tests.core.gateway_helpers import NOW, call, error_of, make_gateway
from tests.support import anthropic_wire as aw
from tests.support.fake_fetch import FakeFetch, FakeResponse

KEYS = {"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "a-x", "GEMINI_API_KEY": "g-x"}
CHAT = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Hi"}]}
ANSWER = json.dumps(
    {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4.1-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
        ],
    }
).encode()


def scripted(*answers):
    """A Fetch handler answering the n-th request with answers[n] (the last repeats); an
    exception instance is raised instead."""
    seen = []

    def handler(request):
        answer = answers[min(len(seen), len(answers) - 1)]
        seen.append(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler


def error(status, message="nope", **headers):
    body = json.dumps({"error": {"message": message}}).encode()
    return FakeResponse(status, {"content-type": "application/json", **headers}, [body])


def ok():
    return FakeResponse(200, {"content-type": "application/json"}, [ANSWER])


def test_a_503_then_success_is_retried_after_the_jittered_backoff():
    gateway, fetch = make_gateway(scripted(error(503), ok()), **KEYS)
    response, _ = call(gateway, body=CHAT)
    assert response.status == 200
    assert dict(response.headers)["x-edgerelay-attempts"] == "2"
    assert dict(response.headers)["x-edgerelay-target"] == "openai/gpt-4.1-mini"
    assert gateway.sleep == [0.25]
    assert len(fetch.requests) == 2
    assert all(r.closed for r in fetch.responses[:1])


def test_each_attempt_gets_the_timeouts_capped_by_what_is_left_of_the_total():
    env = {
        **KEYS,
        "EDGERELAY_TOTAL_TIMEOUT": "30",
        "EDGERELAY_CONNECT_TIMEOUT": "5",
        "EDGERELAY_FIRST_BYTE_TIMEOUT": "100",
        "EDGERELAY_IDLE_TIMEOUT": "7",
    }
    gateway, fetch = make_gateway(scripted(ok()), **env)
    call(gateway, body=CHAT)
    sent = fetch.requests[0]
    assert (sent.connect_timeout, sent.timeout, sent.idle_timeout, sent.total_timeout) == (
        5.0,
        30.0,
        7.0,
        30.0,
    )


def test_connection_errors_are_retried_and_the_last_is_the_answer():
    gateway, _ = make_gateway(scripted(FetchError("refused", connect=True)), **KEYS)
    response, _ = call(gateway, body=CHAT)
    assert response.status == 502
    assert dict(response.headers)["x-edgerelay-attempts"] == "3"
    assert gateway.sleep == [0.25, 0.5]


def test_a_platform_deadline_stops_the_waits():
    gateway, fetch = make_gateway(scripted(error(503), ok()), **KEYS)
    from edgerelay.core import Request
    from tests.support.drive import drive

    raw = json.dumps(CHAT).encode()
    response = drive(
        gateway.handle(Request("POST", "/v1/chat/completions", "", {}, raw), deadline=NOW + 0.1)
    )
    assert response.status == 503  # a 0.25 s backoff would pass the deadline: not waited
    assert gateway.sleep == []
    assert len(fetch.requests) == 1


def test_a_fallback_chain_translates_the_same_request_for_the_next_provider():
    chain = '[aliases.smart]\ntargets = ["openai/gpt-4.1-mini", "anthropic/claude-sonnet-4-5"]'
    answer = json.dumps(
        {
            "id": "msg",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "from claude"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
    ).encode()
    handler = scripted(error(503), error(503), error(503), FakeResponse(200, {}, [answer]))
    gateway, fetch = make_gateway(handler, EDGERELAY_CONFIG=chain, **KEYS)
    response, _ = call(gateway, body={**CHAT, "model": "smart"})
    assert response.status == 200
    body = json.loads(response.body)
    assert (body["model"], body["choices"][0]["message"]["content"]) == (
        "claude-sonnet-4-5",
        "from claude",
    )
    assert dict(response.headers)["x-edgerelay-attempts"] == "4"
    assert fetch.requests[3].url.endswith("/v1/messages")
    assert gateway.sleep == [0.25, 0.5]


def test_fallback_on_moves_on_without_a_retry():
    chain = '[aliases.smart]\ntargets = ["openai/a", "openai/b"]\nfallback_on = [401]'
    gateway, _ = make_gateway(scripted(error(401), ok()), EDGERELAY_CONFIG=chain, **KEYS)
    response, _ = call(gateway, body={**CHAT, "model": "smart"})
    assert response.status == 200
    assert dict(response.headers)["x-edgerelay-target"] == "openai/b"
    assert gateway.sleep == []


def test_an_unconfigured_target_is_skipped_and_the_last_refusal_is_the_answer():
    chain = '[aliases.smart]\ntargets = ["anthropic/claude-x", "openai/gpt-4.1-mini"]'
    gateway, fetch = make_gateway(scripted(ok()), EDGERELAY_CONFIG=chain, OPENAI_API_KEY="k")
    response, _ = call(gateway, body={**CHAT, "model": "smart"})
    assert response.status == 200
    gateway, fetch = make_gateway(scripted(ok()), EDGERELAY_CONFIG=chain)
    response, _ = call(gateway, body={**CHAT, "model": "smart"})
    assert response.status == 503
    assert error_of(response)["code"] == "provider_not_configured"
    assert fetch.requests == []


def test_an_unconfigured_target_is_skipped_too_when_limits_look_first():
    # Limits check the chain before the attempt loop (attempts.admitted, which the cache's
    # check shares).
    chain = '[aliases.smart]\ntargets = ["anthropic/claude-x", "openai/gpt-4.1-mini"]'
    env = {"EDGERELAY_CONFIG": chain + "\n[policies.anonymous]\nrequests_per_minute = 10\n"}
    fetch = FakeFetch(scripted(ok()))
    options = dict(clock=lambda: NOW, new_id=lambda: "id", limit_store=MemoryStore())
    gateway = Gateway(load_config({**env, "OPENAI_API_KEY": "k"}), fetch, **options)
    response, _ = call(gateway, body={**CHAT, "model": "smart"})
    assert response.status == 200, response.body
    gateway = Gateway(load_config(env), fetch, **options)
    response, _ = call(gateway, body={**CHAT, "model": "smart"})
    assert response.status == 503
    assert error_of(response)["code"] == "provider_not_configured"


def anthropic_stream(*events):
    return FakeResponse(200, {"content-type": "text/event-stream"}, [aw.event(e) for e in events])


OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


def test_an_error_event_before_content_is_retried_and_after_content_is_terminal():
    good = [aw.message_start(), *aw.text_block(0, "Hi"), *aw.message_end()]
    late = [aw.message_start(), *aw.text_block(0, "Hi")[:2], OVERLOADED]
    handler = scripted(
        anthropic_stream(aw.message_start(), OVERLOADED),
        anthropic_stream(*late),
        anthropic_stream(*good),
    )
    gateway, fetch = make_gateway(handler, **KEYS)
    response, chunks = call(gateway, body={**CHAT, "model": "anthropic/claude-x", "stream": True})
    assert response.status == 200
    text = b"".join(chunks)
    assert b'"content":"Hi"' in text
    assert text.rstrip().endswith(b"}")  # the terminal error chunk, no [DONE] after it
    assert b'"overloaded_error"' in text
    assert dict(response.headers)["x-edgerelay-attempts"] == "2"  # not a third: content began
    assert gateway.sleep == [0.25]
    assert all(r.closed for r in fetch.responses)


def test_a_held_stream_closes_its_upstream_even_if_never_read():
    good = [aw.message_start(), *aw.text_block(0, "Hi"), *aw.message_end()]
    gateway, fetch = make_gateway(scripted(anthropic_stream(*good)), **KEYS)
    from edgerelay.core import Request
    from tests.support.drive import drive

    raw = json.dumps({**CHAT, "model": "anthropic/claude-x", "stream": True}).encode()
    response = drive(gateway.handle(Request("POST", "/v1/chat/completions", "", {}, raw)))
    drive(response.aclose())  # the client left before the first write
    assert fetch.responses[0].closed
