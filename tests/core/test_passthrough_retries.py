"""Retries on the passthrough routes: a request whose body the gateway holds is sent again as
the retry policy says, before the client gets a byte; the answer kept reaches the client
unchanged, headers included; an upload streamed on as it arrives is sent once (also run in
Pyodide)."""

import json

from edgerelay.core import Request
from edgerelay.core.fetch import FetchError
from tests.core.gateway_helpers import make_gateway
from tests.core.test_gateway_retries import error, scripted
from tests.support.drive import collect, drive
from tests.support.fake_fetch import FakeResponse

KEYS = {"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "a-x"}
PATH = "/openai/v1/chat/completions"
BODY = json.dumps(
    {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Hi"}]}
).encode()
ANSWER = b'{"id":"c","object":"chat.completion","choices":[]}'


def ok():
    return FakeResponse(200, {"content-type": "application/json"}, [ANSWER])


def send(gateway, path=PATH, body=BODY, stream=None, method="POST"):
    request = Request(method, path, "", {"content-type": "application/json"}, body)
    request.body_stream = stream
    response = drive(gateway.handle(request))
    out = b"".join(collect(response.stream)) if response.stream is not None else response.body
    drive(response.aclose())
    return response, out


def header(response, name):
    return dict(response.headers).get(name)


def test_a_held_body_is_sent_again_after_a_503():
    gateway, fetch = make_gateway(scripted(error(503), ok()), **KEYS)
    response, out = send(gateway)
    assert (response.status, out) == (200, ANSWER)
    assert gateway.sleep == [0.25]  # full jitter (random 0.5) of EDGERELAY_RETRY_BASE 0.5
    assert [r.body for r in fetch.requests] == [BODY] * 2
    assert fetch.responses[0].closed


def test_each_attempt_has_the_four_timeouts():
    env = {**KEYS, "EDGERELAY_FIRST_BYTE_TIMEOUT": "7", "EDGERELAY_IDLE_TIMEOUT": "3"}
    gateway, fetch = make_gateway(scripted(ok()), env)
    send(gateway)
    sent = fetch.requests[0]
    assert (sent.connect_timeout, sent.timeout, sent.idle_timeout, sent.total_timeout) == (
        10.0,
        7.0,
        3.0,
        900.0,
    )
    assert sent.pool == "openai"


def test_the_last_error_reaches_the_client_unchanged():
    body = b'{"error":{"message":"down","type":"server_error"}}'
    down = FakeResponse(503, {"content-type": "application/json", "x-request-id": "r1"}, [body])
    gateway, fetch = make_gateway(lambda request: down, {**KEYS, "EDGERELAY_RETRIES": "1"})
    response, out = send(gateway)
    assert (response.status, out) == (503, body)
    assert header(response, "x-request-id") == "r1"
    assert (len(fetch.requests), gateway.sleep) == (2, [0.25])
    assert all(r.closed for r in fetch.responses)


def test_a_long_error_body_is_passed_on_whole():
    chunks = [b"x" * 40_000] * 4  # past the excerpt the policy reads
    gateway, _ = make_gateway(lambda request: FakeResponse(400, {}, chunks), KEYS)
    response, out = send(gateway)
    assert (response.status, out) == (400, b"".join(chunks))
    assert response.upstream.native_body is None  # part was read: never handed on as is


def test_a_longer_wait_than_max_wait_is_not_waited():
    later = error(429, **{"retry-after": "60"})
    gateway, fetch = make_gateway(scripted(later, ok()), KEYS)
    response, _ = send(gateway)
    assert (response.status, header(response, "retry-after")) == (429, "60")
    assert (len(fetch.requests), gateway.sleep) == (1, [])


def test_a_spent_quota_is_not_retried():
    quota = error(429, "You exceeded your current quota")
    quota.chunks = [b'{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}']
    gateway, fetch = make_gateway(scripted(quota, ok()), KEYS)
    response, _ = send(gateway)
    assert (response.status, len(fetch.requests), gateway.sleep) == (429, 1, [])


def test_no_answer_at_all_is_retried_then_a_502_in_the_providers_shape():
    gateway, fetch = make_gateway(scripted(FetchError("connection refused", connect=True)), KEYS)
    response, out = send(gateway, "/anthropic/v1/messages")
    assert response.status == 502
    assert json.loads(out)["type"] == "error"  # Anthropic's error shape
    assert (len(fetch.requests), gateway.sleep) == (3, [0.25, 0.5])


def test_a_streamed_upload_is_sent_once():
    async def upload():
        yield BODY

    gateway, fetch = make_gateway(scripted(error(503), ok()), KEYS)
    response, _ = send(gateway, body=b"", stream=upload())
    assert response.status == 503
    assert (len(fetch.requests), gateway.sleep) == (1, [])


def test_a_stream_is_the_answer_once_it_has_begun():
    chunks = [b'data: {"choices":[]}\n\n', b"data: [DONE]\n\n"]
    stream = FakeResponse(200, {"content-type": "text/event-stream"}, chunks)
    gateway, fetch = make_gateway(scripted(error(502), stream), KEYS)
    response, out = send(gateway)
    assert (response.status, out) == (200, b"".join(chunks))
    assert (len(fetch.requests), gateway.sleep) == (2, [0.25])


# -- x-edgerelay-attempts and x-edgerelay-target ----------------------------------------------


def test_the_answer_says_how_many_attempts_it_took_and_who_answered():
    gateway, _ = make_gateway(scripted(error(503), ok()), **KEYS)
    response, _ = send(gateway)
    assert header(response, "x-edgerelay-attempts") == "2"
    assert header(response, "x-edgerelay-target") == "openai/gpt-4.1-mini"


def test_an_error_given_up_on_carries_the_attempts_too():
    gateway, _ = make_gateway(scripted(error(503)), {**KEYS, "EDGERELAY_RETRIES": "1"})
    response, _ = send(gateway)
    assert response.status == 503
    assert (header(response, "x-edgerelay-attempts"), header(response, "x-edgerelay-target")) == (
        "2",
        "openai/gpt-4.1-mini",
    )


def test_an_upstream_that_never_answered_is_counted_on_the_gateways_error():
    gateway, _ = make_gateway(scripted(FetchError("connection refused", connect=True)), KEYS)
    response, _ = send(gateway, "/anthropic/v1/messages", body=b'{"model":"claude-x"}')
    assert response.status == 502
    assert header(response, "x-edgerelay-attempts") == "3"
    assert header(response, "x-edgerelay-target") == "anthropic/claude-x"


def test_the_gemini_model_is_read_from_the_path():
    env = {**KEYS, "GEMINI_API_KEY": "g-x"}
    gateway, _ = make_gateway(scripted(ok()), env)
    response, _ = send(gateway, "/gemini/v1beta/models/gemini-2.5-flash:generateContent", b"{}")
    assert header(response, "x-edgerelay-target") == "gemini/gemini-2.5-flash"


def test_without_a_body_it_read_the_target_is_the_provider_alone():
    async def upload():
        yield BODY

    gateway, _ = make_gateway(scripted(ok(), ok()), KEYS)
    response, _ = send(gateway, body=b"", stream=upload())  # streamed on, never parsed
    assert (header(response, "x-edgerelay-attempts"), header(response, "x-edgerelay-target")) == (
        "1",
        "openai",
    )
    response, _ = send(gateway, "/openai/v1/models", b"", method="GET")
    assert header(response, "x-edgerelay-target") == "openai"
