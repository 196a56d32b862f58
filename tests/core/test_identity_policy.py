"""Per-client policies: model allowlists (after alias resolution, on /v1/models too), token caps
and defaults, message counts, and passthrough routes held to the same policy."""

import json

from edgerelay.core.identity.policy import Policy, cap_fields
from tests.core.identity_helpers import CLIENT_KEY, bearer, claims, hs256, identity_gateway, send

POLICIES = """
[aliases]
fast = "openai/gpt-4o-mini"
smart = "anthropic/claude-sonnet-4"

[policies.default]
models = ["openai/gpt-4o*", "mock/*"]
max_tokens = 100
max_messages = 3
passthrough = ["openai", "gemini", "anthropic"]

[policies.internal]
passthrough = ["openai", "anthropic", "gemini"]

[policies.anonymous]
models = ["mock/*"]

[clients.batch]
key = "sha256:%s"
policy = "internal"
"""
INTERNAL_KEY = "internal-client-key-0123456789"


def gateway():
    digest = __import__("hashlib").sha256(INTERNAL_KEY.encode()).hexdigest()
    return identity_gateway({"EDGERELAY_CONFIG": POLICIES % digest})


def chat(model, **extra):
    return {"model": model, "messages": [{"role": "user", "content": "x"}], **extra}


def test_allowlist_after_alias_resolution_and_403_names_the_model_not_the_list():
    gw, _, upstreams = gateway()
    user = bearer(hs256(claims()))
    assert send(gw, body=chat("fast"), headers=user)[0].status == 200
    assert send(gw, body=chat("gpt-4o"), headers=user)[0].status == 200  # bare: openai's
    response, body = send(gw, body=chat("smart"), headers=user)
    assert response.status == 403
    message = json.loads(body)["error"]["message"]
    assert "smart" in message and "gpt-4o" not in message
    assert send(gw, body=chat("groq-not-configured/gpt-4o"), headers=user)[0].status == 403
    # internal policy (by claim, or by client key entry): any model
    internal = bearer(hs256(claims(edgerelay_policy="internal")))
    assert send(gw, body=chat("smart"), headers=internal)[0].status != 403
    assert send(gw, body=chat("smart"), headers=bearer(INTERNAL_KEY))[0].status != 403
    # a claim naming no policy is an invalid credential
    unknown = bearer(hs256(claims(edgerelay_policy="root")))
    assert send(gw, body=chat("fast"), headers=unknown)[0].status == 401
    # fast, gpt-4o, and smart twice for the internal policy; nothing for the refusals
    assert len(upstreams.model_requests) == 4


def test_caps_lower_larger_values_and_a_missing_limit_gets_the_default():
    gw, _, upstreams = gateway()
    user = bearer(hs256(claims()))
    send(gw, body=chat("gpt-4o", max_tokens=5000), headers=user)
    send(gw, body=chat("gpt-4o", max_completion_tokens=50), headers=user)
    send(gw, body=chat("gpt-4o"), headers=user)
    sent = [json.loads(r.body) for r in upstreams.model_requests]
    assert sent[0]["max_tokens"] == 100
    assert sent[1]["max_completion_tokens"] == 50
    assert sent[2]["max_completion_tokens"] == 100


def test_message_count_is_limited():
    gw, _, _ = gateway()
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}] * 4}
    response, out = send(gw, body=body, headers=bearer(hs256(claims())))
    assert response.status == 400 and json.loads(out)["error"]["param"] == "messages"


def test_models_list_shows_only_what_the_caller_may_use():
    gw, _, _ = gateway()
    _, body = send(gw, "GET", "/v1/models", headers=bearer(hs256(claims())))
    names = {m["id"] for m in json.loads(body)["data"]}
    assert names == {"mock/echo", "fast"}
    _, body = send(gw, "GET", "/v1/models", headers=bearer(INTERNAL_KEY))
    assert {m["id"] for m in json.loads(body)["data"]} == {"mock/echo", "fast", "smart"}


def test_passthrough_body_is_checked_and_capped_under_each_providers_field():
    gw, _fetch, upstreams = gateway()
    user = bearer(hs256(claims()))
    response, body = send(
        gw,
        path="/anthropic/v1/messages",
        body={"model": "claude-opus-4", "max_tokens": 10},
        headers={"x-api-key": hs256(claims())},
    )
    assert response.status == 403 and json.loads(body)["error"]["type"] == "permission_error"
    response, body = send(
        gw,
        path="/gemini/v1beta/models/gemini-2.5-pro:generateContent",
        body={"contents": []},
        headers={"x-goog-api-key": hs256(claims())},
    )
    assert response.status == 403 and json.loads(body)["error"]["status"] == "PERMISSION_DENIED"
    assert upstreams.model_requests == []
    cases = [
        ("/openai/v1/chat/completions", {"model": "gpt-4o", "max_completion_tokens": 999}),
        ("/openai/v1/responses", {"model": "gpt-4o", "input": "x"}),
        ("/openai/v1/responses", {"model": "gpt-4o", "max_output_tokens": 7}),
    ]
    for path, sent in cases:
        assert send(gw, path=path, body=sent, headers=user)[0].status == 200
    out = [json.loads(r.body) for r in upstreams.model_requests]
    assert out[0]["max_completion_tokens"] == 100
    assert out[1]["max_output_tokens"] == 100
    assert out[2]["max_output_tokens"] == 7


def test_gemini_cap_goes_under_generation_config():
    gw, _, upstreams = identity_gateway(
        {"EDGERELAY_CONFIG": "[policies.default]\nmax_tokens = 64\n"}
    )
    key = {"x-goog-api-key": CLIENT_KEY}
    path = "/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    send(
        gw,
        path=path,
        body={"contents": [], "generationConfig": {"maxOutputTokens": 4096}},
        headers=key,
    )
    send(gw, path=path, body={"contents": []}, headers=key)
    out = [json.loads(r.body) for r in upstreams.model_requests]
    assert out[0]["generationConfig"]["maxOutputTokens"] == 64
    assert out[1]["generationConfig"]["maxOutputTokens"] == 64


def test_passthrough_not_in_the_policy_is_403():
    gw, _, upstreams = identity_gateway(
        {"EDGERELAY_CONFIG": '[policies.default]\npassthrough = ["openai"]\n'}
    )
    response, body = send(
        gw,
        path="/anthropic/v1/messages",
        body={"model": "claude-x"},
        headers={"x-api-key": CLIENT_KEY},
    )
    assert response.status == 403 and json.loads(body)["type"] == "error"
    assert (
        send(
            gw,
            path="/openai/v1/embeddings",
            body={"model": "e", "input": "x"},
            headers=bearer(CLIENT_KEY),
        )[0].status
        == 200
    )
    assert len(upstreams.model_requests) == 1


def test_cap_fields_ignores_non_numbers_and_sets_nested_defaults():
    policy = Policy("p", max_tokens=10)
    body = {"max_tokens": "lots"}
    assert cap_fields(body, ("max_tokens",), policy, "max_tokens") is False
    assert body == {"max_tokens": "lots"}
    body = {}
    assert cap_fields(body, ("a.b",), policy, "a.b") is True and body == {"a": {"b": 10}}


def test_a_configured_anonymous_policy_has_no_passthrough_unless_it_lists_some():
    from edgerelay.core import load_config

    policies = load_config(
        {"EDGERELAY_CONFIG": "[policies.anonymous]\nmax_tokens = 5\n[policies.open]\n"}
    ).identity.policies
    assert policies["anonymous"].passthrough == frozenset()
    assert policies["open"].passthrough is None
    listed = load_config({"EDGERELAY_CONFIG": '[policies.anonymous]\npassthrough = ["openai"]\n'})
    assert listed.identity.policies["anonymous"].allows_passthrough("openai")


def test_a_streamed_upload_is_read_within_the_body_limit_to_hold_the_policy():
    # A passthrough upload that would go on as it arrives is read first when a policy must
    # see the model: within EDGERELAY_MAX_BODY_BYTES it is checked and capped, past it a 413.
    from edgerelay.core import Request
    from tests.support.drive import drive

    gw, _fetch, upstreams = gateway()
    body = json.dumps({"model": "gpt-4o", "max_completion_tokens": 999}).encode()
    closed = []

    async def upload(pieces):
        try:
            for piece in pieces:
                yield piece
        finally:
            closed.append(True)

    def streamed(pieces):
        request = Request(
            "POST", "/openai/v1/chat/completions", "", bearer(hs256(claims())), b"", "203.0.113.9"
        )
        request.body_stream = upload(pieces)
        return drive(gw.handle(request))

    assert streamed([body[:10], body[10:]]).status == 200
    assert json.loads(upstreams.model_requests[-1].body)["max_completion_tokens"] == 100
    limit = gw.config.max_body_bytes
    response = streamed([b"x" * limit, b"x", b"never read"])
    assert response.status == 413 and json.loads(response.body)["error"]["code"]
    assert len(upstreams.model_requests) == 1 and closed == [True, True]
