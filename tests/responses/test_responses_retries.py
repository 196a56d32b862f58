"""/v1/responses through the attempt loop of /v1/chat/completions: retried before the first byte,
falling back along an alias's chain to another provider (its answer converted to the Responses
shape), OpenAI's own Responses endpoint retried too; the waits are the injected sleep's."""

from __future__ import annotations

import json

from tests.responses.helpers import JSON, SSE, anthropic_message, gateway, post, streamed
from tests.support import anthropic_wire as wire
from tests.support import responses_oracle as oracle
from tests.support.fake_fetch import FakeResponse

CLAUDE = "anthropic/claude-sonnet-4-5"
DOWN = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
CHAIN = '[aliases.smart]\ntargets = ["anthropic/claude-sonnet-4-5", "openai/gpt-4.1-mini"]\n'
CHAT_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4.1-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "from openai"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


def overloaded():
    return FakeResponse(529, JSON, [DOWN.encode()])


def by_host(**answers):
    """A handler answering by upstream host: ``anthropic`` / ``openai`` -> list of answers (the
    last one repeats)."""
    seen: dict[str, int] = {}

    def handler(request):
        host = "anthropic" if "anthropic" in request.url else "openai"
        script = answers[host]
        n = seen.get(host, 0)
        seen[host] = n + 1
        return script[min(n, len(script) - 1)]()

    return handler


def claude_answer():
    body = anthropic_message([{"type": "text", "text": "from claude"}])
    return FakeResponse(200, JSON, [json.dumps(body).encode()])


def header(response, name):
    return dict(response.headers).get(name)


def test_an_overloaded_provider_is_retried_before_the_answer():
    gw, fetch = gateway(by_host(anthropic=[overloaded, claude_answer]))
    response, _ = post(gw, {"model": CLAUDE, "input": "hi"})
    assert response.status == 200
    assert oracle.response(response.body).output_text == "from claude"
    assert header(response, "x-edgerelay-attempts") == "2"
    assert (len(fetch.requests), gw.sleep) == (2, [0.25])


def test_a_chain_falls_back_to_another_provider_and_the_answer_is_converted():
    gw, fetch = gateway(
        by_host(
            anthropic=[overloaded],
            openai=[lambda: FakeResponse(200, JSON, [json.dumps(CHAT_ANSWER).encode()])],
        ),
        EDGERELAY_CONFIG=CHAIN,
        EDGERELAY_RETRIES="1",
    )
    response, _ = post(gw, {"model": "smart", "input": "hi"})
    assert response.status == 200
    result = oracle.response(response.body)
    assert (result.output_text, result.model) == ("from openai", "gpt-4.1-mini")
    assert header(response, "x-edgerelay-target") == "openai/gpt-4.1-mini"
    assert header(response, "x-edgerelay-attempts") == "3"
    assert gw.sleep == [0.25]
    assert fetch.requests[-1].url.endswith("/chat/completions")  # chat, converted back


def test_a_stream_that_fails_before_its_first_content_is_retried():
    opening = wire.stream([{"type": "message_start", "message": wire.message_start()["message"]}])
    failed = opening + wire.event({"type": "error", "error": {"type": "overloaded_error"}})
    script = [
        lambda: FakeResponse(200, SSE, [failed]),
        lambda: FakeResponse(200, SSE, [wire.text_stream("Hello there")]),
    ]
    gw, fetch = gateway(by_host(anthropic=script))
    events, _ = streamed(gw, {"model": CLAUDE, "input": "hi"})
    assert events[-1].type == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (
        "Hello there"
    )
    assert (len(fetch.requests), gw.sleep) == (2, [0.25])


def test_openais_own_responses_endpoint_is_retried():
    done = {"id": "resp_1", "object": "response", "status": "completed", "output": []}
    script = [
        lambda: FakeResponse(503, JSON, [b'{"error":{"message":"down"}}']),
        lambda: FakeResponse(200, JSON, [json.dumps(done).encode()]),
    ]
    gw, fetch = gateway(by_host(openai=script))
    response, chunks = post(gw, {"model": "openai/gpt-4.1", "input": "hi"})
    assert response.status == 200
    assert json.loads(b"".join(chunks)) == done
    assert header(response, "x-edgerelay-attempts") == "2"
    assert fetch.requests[-1].url.endswith("/responses")
    assert (len(fetch.requests), gw.sleep) == (2, [0.25])
    assert header(response, "x-edgerelay-target") == "openai/gpt-4.1"


OPENAI_FIRST = '[aliases.smart]\ntargets = ["openai/gpt-4.1", "anthropic/claude-sonnet-4-5"]\n'


def down_503():
    return FakeResponse(503, JSON, [b'{"error":{"message":"down"}}'])


def test_openais_own_endpoint_falls_back_along_the_chain_through_chat():
    gw, fetch = gateway(
        by_host(openai=[down_503], anthropic=[claude_answer]),
        EDGERELAY_CONFIG=OPENAI_FIRST,
        EDGERELAY_RETRIES="1",
    )
    response, _ = post(gw, {"model": "smart", "input": "hi"})
    assert response.status == 200
    assert oracle.response(response.body).output_text == "from claude"
    assert header(response, "x-edgerelay-target") == "anthropic/claude-sonnet-4-5"
    assert header(response, "x-edgerelay-attempts") == "3"  # two on OpenAI, one on Anthropic
    assert [r.url.rpartition("/")[2] for r in fetch.requests] == [
        "responses",
        "responses",
        "messages",
    ]
    assert gw.sleep == [0.25]  # one retry on OpenAI, none before moving on
    assert all(r.closed for r in fetch.responses)


def test_openais_own_endpoint_moves_on_from_an_unreachable_upstream():
    from edgerelay.core.fetch import FetchError

    def refused():
        raise FetchError("connection refused", connect=True)

    gw, fetch = gateway(
        by_host(openai=[refused], anthropic=[claude_answer]),
        EDGERELAY_CONFIG=OPENAI_FIRST,
        EDGERELAY_RETRIES="0",
    )
    response, _ = post(gw, {"model": "smart", "input": "hi"})
    assert response.status == 200
    assert header(response, "x-edgerelay-attempts") == "2"
    assert gw.sleep == []
    assert [r.url.rpartition("/")[2] for r in fetch.requests] == ["responses", "messages"]


def test_a_chain_of_openai_endpoints_moves_along_them_before_chat():
    done = {"id": "resp_2", "object": "response", "status": "completed", "output": []}
    chain = '[aliases.smart]\ntargets = ["openai/gpt-a", "openai/gpt-b"]\nretries = 0\n'
    script = [down_503, lambda: FakeResponse(200, JSON, [json.dumps(done).encode()])]
    gw, fetch = gateway(by_host(openai=script), EDGERELAY_CONFIG=chain)
    response, chunks = post(gw, {"model": "smart", "input": "hi"})
    assert (response.status, json.loads(b"".join(chunks))) == (200, done)
    assert [json.loads(r.body)["model"] for r in fetch.requests] == ["gpt-a", "gpt-b"]
    assert header(response, "x-edgerelay-target") == "openai/gpt-b"
    assert header(response, "x-edgerelay-attempts") == "2"


def test_a_client_error_from_openais_endpoint_is_not_a_reason_to_fall_back():
    bad = lambda: FakeResponse(400, JSON, [b'{"error":{"message":"bad input"}}'])  # noqa: E731
    gw, fetch = gateway(
        by_host(openai=[bad], anthropic=[claude_answer]), EDGERELAY_CONFIG=OPENAI_FIRST
    )
    response, _ = post(gw, {"model": "smart", "input": "hi"})
    assert response.status == 400
    assert json.loads(response.body)["error"]["message"] == "bad input"
    assert header(response, "x-edgerelay-attempts") == "1"
    assert len(fetch.requests) == 1


def test_the_last_openai_target_gives_its_error_with_every_attempt_counted():
    chain = '[aliases.smart]\ntargets = ["openai/gpt-a", "openai/gpt-b"]\nretries = 1\n'
    gw, fetch = gateway(by_host(openai=[down_503]), EDGERELAY_CONFIG=chain)
    response, _ = post(gw, {"model": "smart", "input": "hi"})
    assert response.status == 503
    assert len(fetch.requests) == 4
    assert header(response, "x-edgerelay-attempts") == "4"
    assert header(response, "x-edgerelay-target") == "openai/gpt-b"
    assert gw.sleep == [0.25, 0.25]
