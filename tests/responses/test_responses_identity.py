"""Identity on /v1/responses, exactly as on chat: the same authenticate step (401 before any
upstream call), the caller's policy (model allowlist 403, output cap, message count), errors in
OpenAI's shape naming the Responses field, and stored responses kept per identified client."""

import json

from tests.core.identity_helpers import (
    CLIENT_KEY,
    Upstreams,
    bearer,
    claims,
    hs256,
    identity_gateway,
    send,
)
from tests.responses.helpers import anthropic_message

POLICIES = """
[policies.default]
models = ["anthropic/claude-sonnet-4*", "openai/gpt-4o*", "mock/*"]
max_tokens = 100
max_messages = 3
"""


class ResponsesUpstreams(Upstreams):
    """Anthropic answers with a message; OpenAI's /responses with a response object."""

    def __call__(self, request):
        from tests.support.fake_fetch import FakeResponse

        if "anthropic" in request.url:
            self.model_requests.append(request)
            body = anthropic_message([{"type": "text", "text": "Hi there"}])
            return FakeResponse(
                200, {"content-type": "application/json"}, [json.dumps(body).encode()]
            )
        if request.url.endswith("/responses"):
            self.model_requests.append(request)
            body = {"id": "resp_up", "object": "response", "output": []}
            return FakeResponse(
                200, {"content-type": "application/json"}, [json.dumps(body).encode()]
            )
        return super().__call__(request)


def gateway(target="worker"):
    return identity_gateway(
        {"EDGERELAY_CONFIG": POLICIES}, target=target, upstreams=ResponsesUpstreams()
    )


def responses(gw, body, headers):
    return send(gw, path="/v1/responses", body=body, headers=headers)


def user(sub="user-1", **extra):
    return bearer(hs256(claims(sub=sub, **extra)))


def test_no_or_a_bad_credential_is_401_in_openais_shape_before_any_upstream_call():
    gw, fetch, _ = gateway()
    body = {"model": "anthropic/claude-sonnet-4-5", "input": "hi"}
    for headers, word in [({}, "required"), (bearer("not-a-key-of-ours"), "invalid")]:
        response, out = responses(gw, body, headers)
        assert response.status == 401
        error = json.loads(out)["error"]
        assert word in error["message"] and error["type"] == "authentication_error"
        assert ("www-authenticate", 'Bearer realm="edgerelay"') in response.headers
    assert fetch.requests == []


def test_a_public_target_without_identity_refuses_anonymous_calls():
    gw, fetch, _ = identity_gateway(
        {
            k: None
            for k in (
                "EDGERELAY_JWKS_URL",
                "EDGERELAY_JWT_SECRET",
                "EDGERELAY_CLIENT_KEYS",
                "EDGERELAY_TURNSTILE_SECRET",
                "EDGERELAY_SESSION_SECRET",
            )
        },
        target="lambda",
    )
    response, out = responses(gw, {"model": "mock/echo", "input": "hi"}, {})
    assert (
        response.status == 401
        and "EDGERELAY_ALLOW_ANONYMOUS" in json.loads(out)["error"]["message"]
    )
    assert fetch.requests == []


def test_the_model_allowlist_is_403_naming_the_model_translated_or_passed_through():
    gw, _, upstreams = gateway()
    for model in ("anthropic/claude-opus-4-1", "openai/gpt-4.1", "gemini/gemini-2.5-flash"):
        response, out = responses(gw, {"model": model, "input": "hi"}, user())
        assert response.status == 403
        error = json.loads(out)["error"]
        assert error["code"] == "model_not_allowed" and error["param"] == "model"
        assert model in error["message"] and "claude-sonnet-4*" not in error["message"]
    assert upstreams.model_requests == []
    assert responses(gw, {"model": "mock/echo", "input": "hi"}, user())[0].status == 200
    ok, _ = responses(gw, {"model": "anthropic/claude-sonnet-4-5", "input": "hi"}, user())
    assert ok.status == 200 and len(upstreams.model_requests) == 1


def test_the_output_cap_and_default_reach_the_upstream_under_its_own_field():
    gw, _, upstreams = gateway()
    claude = {"model": "anthropic/claude-sonnet-4-5", "input": "hi"}
    assert responses(gw, {**claude, "max_output_tokens": 5000}, user())[0].status == 200
    assert responses(gw, claude, user())[0].status == 200
    assert responses(gw, {**claude, "max_output_tokens": 40}, user())[0].status == 200
    passthrough = {"model": "openai/gpt-4o", "input": "hi", "max_output_tokens": 999}
    assert responses(gw, passthrough, user())[0].status == 200
    assert responses(gw, {"model": "gpt-4o", "input": "hi"}, user())[0].status == 200
    sent = [json.loads(r.body) for r in upstreams.model_requests]
    assert [s["max_tokens"] for s in sent[:3]] == [100, 100, 40]  # Anthropic's field
    assert sent[3]["max_output_tokens"] == 100 and sent[3]["model"] == "gpt-4o"
    assert sent[4]["max_output_tokens"] == 100


def test_the_message_count_is_a_400_naming_input_also_across_previous_responses():
    gw, _, _ = gateway()
    items = [{"role": "user", "content": "x"}] * 4
    response, out = responses(gw, {"model": "mock/echo", "input": items}, user())
    assert response.status == 400
    error = json.loads(out)["error"]
    assert error["param"] == "input" and error["code"] == "too_many_messages"
    # Two items and their answer stored; one more turn on top is four messages in all.
    first, out = responses(gw, {"model": "mock/echo", "input": items[:2]}, user())
    assert first.status == 200
    previous = json.loads(out)["id"]
    body = {"model": "mock/echo", "input": "more", "previous_response_id": previous}
    response, out = responses(gw, body, user())
    assert response.status == 400
    error = json.loads(out)["error"]
    assert error["param"] == "input" and "`input`" in error["message"]


def test_stored_responses_belong_to_the_identified_client_not_to_one_token():
    gw, _, _ = gateway()
    _, out = responses(gw, {"model": "mock/echo", "input": "remember me"}, user(iat=1))
    first = json.loads(out)["id"]
    follow = {"model": "mock/echo", "input": "again", "previous_response_id": first}
    # A fresh token for the same subject (as after a refresh) finds it.
    response, _ = responses(gw, follow, user())
    assert response.status == 200
    # Another subject, or a client key, does not.
    for other in (user("user-2"), bearer(CLIENT_KEY)):
        response, out = responses(gw, follow, other)
        assert response.status == 400
        assert json.loads(out)["error"]["param"] == "previous_response_id"
