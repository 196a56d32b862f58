"""Identity at the gateway: the three credential kinds, secure defaults, enforced origins,
sessions, the JWKS cache's decisions, errors in each route's own shape, and canary secrets never
in a response. Core only, fake upstreams, a stand-in verifier (runs inside Pyodide too)."""

import asyncio
import json

import pytest

from edgerelay.core import ConfigError, load_config
from edgerelay.core.identity.client_keys import key_id
from edgerelay.core.identity.jwks import REFETCH_INTERVAL
from tests.core.gateway_helpers import NOW
from tests.core.identity_helpers import (
    CANARIES,
    CLIENT_KEY,
    JWKS_URL,
    KEYS,
    SESSION_SECRET,
    FakeVerifier,
    Upstreams,
    bearer,
    claims,
    hs256,
    identity_gateway,
    send,
    signed,
)

CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}
MODEL_ROUTES = [
    ("POST", "/v1/chat/completions", "openai"),
    ("POST", "/v1/responses", "openai"),
    ("GET", "/v1/models", "openai"),
    ("POST", "/openai/v1/chat/completions", "openai"),
    ("POST", "/anthropic/v1/messages", "anthropic"),
    ("POST", "/gemini/v1beta/models/gemini-2.0-flash:generateContent", "gemini"),
]


def error_message(body: bytes, flavor: str) -> str:
    parsed = json.loads(body)
    if flavor == "anthropic":
        assert parsed["type"] == "error"
    return parsed["error"]["message"]


def no_canary(*bodies: bytes) -> None:
    for body in bodies:
        for canary in CANARIES:
            assert canary.encode() not in body


# --- secure defaults ---------------------------------------------------------------------


@pytest.mark.parametrize("target", ["worker", "lambda"])
@pytest.mark.parametrize(("method", "path", "flavor"), MODEL_ROUTES)
def test_public_targets_refuse_anonymous_model_calls_naming_the_settings(
    target, method, path, flavor
):
    gateway, fetch, _ = identity_gateway(
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
        target=target,
    )
    response, body = send(gateway, method, path, CHAT if method == "POST" else None)
    assert response.status == 401
    message = error_message(body, flavor)
    for setting in ("EDGERELAY_JWKS_URL", "EDGERELAY_CLIENT_KEYS", "EDGERELAY_ALLOW_ANONYMOUS"):
        assert setting in message
    assert fetch.requests == []


def test_public_target_open_routes_and_explicit_anonymous():
    off = {
        k: None
        for k in (
            "EDGERELAY_JWKS_URL",
            "EDGERELAY_JWT_SECRET",
            "EDGERELAY_CLIENT_KEYS",
            "EDGERELAY_TURNSTILE_SECRET",
            "EDGERELAY_SESSION_SECRET",
        )
    }
    gateway, _, _ = identity_gateway(off)
    assert send(gateway, "GET", "/healthz")[0].status == 200
    response, body = send(gateway, "GET", "/v1/sessions")
    assert response.status == 200 and json.loads(body) == {"enabled": False, "site_key": None}
    gateway, _, _ = identity_gateway({**off, "EDGERELAY_ALLOW_ANONYMOUS": "true"})
    assert send(gateway, body=CHAT)[0].status == 200


def test_server_target_without_identity_serves_anyone_with_every_route():
    gateway, _, upstreams = identity_gateway(
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
        target="server",
    )
    assert send(gateway, body=CHAT)[0].status == 200
    # passthrough too: with identity off, `default` applies (no `anonymous` table exists)
    response, _ = send(gateway, path="/openai/v1/chat/completions", body={"model": "gpt-4o"})
    assert response.status == 200 and len(upstreams.model_requests) == 1


# --- the three kinds -----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "flavor"), MODEL_ROUTES)
def test_missing_and_invalid_credentials_are_401_in_the_routes_shape(method, path, flavor):
    gateway, fetch, _ = identity_gateway()
    body = CHAT if method == "POST" else None
    for headers, word in [({}, "required"), (bearer("not-a-key-of-ours"), "invalid")]:
        response, out = send(gateway, method, path, body, headers)
        assert response.status == 401
        assert word in error_message(out, flavor)
        assert ("www-authenticate", 'Bearer realm="edgerelay"') in response.headers
    assert fetch.requests == []


def test_client_keys_plain_and_sha256_entries():
    digest = "sha256:" + __import__("hashlib").sha256(b"another-client-key-xyz").hexdigest()
    gateway, _, _ = identity_gateway({"EDGERELAY_CLIENT_KEYS": f"{CLIENT_KEY}, {digest}"})
    for key in (CLIENT_KEY, "another-client-key-xyz"):
        response, _ = send(gateway, body=CHAT, headers=bearer(key))
        assert response.status == 200
    assert send(gateway, body=CHAT, headers=bearer(CLIENT_KEY + "x"))[0].status == 401


def test_client_ids_carry_their_kind():
    from edgerelay.core.identity.authenticate import Authenticator
    from tests.support.drive import drive

    gateway, _, _ = identity_gateway()
    auth: Authenticator = gateway.auth
    key = drive(auth.identify(bearer(CLIENT_KEY), False))
    assert key.client_id.startswith("key:") and CLIENT_KEY not in key.client_id
    assert key.client_id == "key:" + key_id(
        __import__("hashlib").sha256(CLIENT_KEY.encode()).digest()
    )
    assert drive(auth.identify(bearer(hs256(claims())), False)).client_id == "jwt:user-1"
    assert drive(auth.identify(bearer(signed(claims())), False)).client_id == "jwt:user-1"


def test_hs256_jwt_accepted_expired_and_tampered_refused_without_saying_why():
    gateway, _, _ = identity_gateway()
    assert send(gateway, body=CHAT, headers=bearer(hs256(claims())))[0].status == 200
    response, body = send(gateway, body=CHAT, headers=bearer(hs256(claims(exp=NOW - 100))))
    assert response.status == 401 and json.loads(body)["error"]["message"] == (
        "The credential has expired."
    )
    for bad in (
        hs256(claims(), secret="x" * 40),
        hs256(claims(nbf=NOW + 100)),
        hs256({"sub": "u"}),  # no exp
    ):
        response, body = send(gateway, body=CHAT, headers=bearer(bad))
        assert response.status == 401
        assert json.loads(body)["error"]["message"] == "The credential is invalid."


def test_issuer_and_audience_checked_when_set():
    env = {"EDGERELAY_JWT_ISSUER": "https://idp.example/", "EDGERELAY_JWT_AUDIENCE": "relay"}
    gateway, _, _ = identity_gateway(env)
    good = claims(iss="https://idp.example/", aud="relay")
    assert send(gateway, body=CHAT, headers=bearer(signed(good)))[0].status == 200
    for bad in (claims(iss="https://other/", aud="relay"), claims(iss="https://idp.example/")):
        assert send(gateway, body=CHAT, headers=bearer(signed(bad)))[0].status == 401


def test_jwks_token_good_forged_none_and_hs256_confusion():
    gateway, _, _ = identity_gateway({"EDGERELAY_JWT_SECRET": None})
    assert send(gateway, body=CHAT, headers=bearer(signed(claims())))[0].status == 200
    assert send(gateway, body=CHAT, headers=bearer(signed(claims(), good=False)))[0].status == 401
    assert send(gateway, body=CHAT, headers=bearer(signed(claims(), alg="none")))[0].status == 401
    # HS256 "signed" with the public key as the secret: no JWT secret, so never checked as HMAC
    confused = hs256(claims(), secret=json.dumps(KEYS["keys"][0]))
    assert send(gateway, body=CHAT, headers=bearer(confused))[0].status == 401
    # an ES256 alg against the RSA key is refused before the verifier is asked
    verifier = FakeVerifier()
    gateway, _, _ = identity_gateway(verifier=verifier)
    assert send(gateway, body=CHAT, headers=bearer(signed(claims(), alg="ES256")))[0].status == 401
    assert verifier.calls == 0


def test_jwks_tokens_without_a_verifier_are_503_naming_the_setting():
    from edgerelay.core import Gateway

    gateway, fetch, _ = identity_gateway()
    bare = Gateway(gateway.config, fetch, clock=lambda: NOW, new_id=lambda: "x", target="worker")
    response, body = send(bare, body=CHAT, headers=bearer(signed(claims())))
    assert response.status == 503 and "EDGERELAY_JWKS_URL" in json.loads(body)["error"]["message"]


def test_a_session_is_checked_only_with_the_session_secret():
    gateway, _, _ = identity_gateway()
    session = hs256(claims(iss="edgerelay-session"), secret=SESSION_SECRET)
    assert send(gateway, body=CHAT, headers=bearer(session))[0].status == 200
    # signed with the JWT secret but claiming to be a session: invalid, no fall-through
    forged = hs256(claims(iss="edgerelay-session"))
    assert send(gateway, body=CHAT, headers=bearer(forged))[0].status == 401


def test_verified_tokens_are_cached_but_never_past_exp():
    now = [NOW]
    verifier = FakeVerifier()
    gateway, _, _ = identity_gateway(verifier=verifier, clock=lambda: now[0])
    token = signed(claims(exp=NOW + 100))
    for _ in range(5):
        assert send(gateway, body=CHAT, headers=bearer(token))[0].status == 200
    assert verifier.calls == 1
    now[0] = NOW + 131  # past exp and the leeway
    assert send(gateway, body=CHAT, headers=bearer(token))[0].status == 401


# --- JWKS cache ----------------------------------------------------------------------------


def jwks_fetches(fetch) -> int:
    return sum(1 for r in fetch.requests if r.url == JWKS_URL)


def test_unknown_kid_refetches_once_then_401_and_a_burst_is_bounded():
    now = [NOW]
    gateway, fetch, upstreams = identity_gateway(clock=lambda: now[0])
    assert send(gateway, body=CHAT, headers=bearer(signed(claims())))[0].status == 200
    assert jwks_fetches(fetch) == 1
    now[0] += REFETCH_INTERVAL
    for i in range(100):
        token = signed(claims(), kid=f"unknown-{i}")
        assert send(gateway, body=CHAT, headers=bearer(token))[0].status == 401
    assert jwks_fetches(fetch) == 2  # one re-fetch for the whole burst
    # a key rotated in is found on the next allowed re-fetch
    upstreams.jwks = {"keys": [*KEYS["keys"], {"kty": "RSA", "kid": "k2", "n": "x", "e": "y"}]}
    now[0] += REFETCH_INTERVAL
    assert send(gateway, body=CHAT, headers=bearer(signed(claims(), kid="k2")))[0].status == 200
    assert jwks_fetches(fetch) == 3


def test_jwks_host_down_keeps_cached_keys_and_none_cached_is_503_naming_the_jwks():
    now = [NOW]
    gateway, _fetch, upstreams = identity_gateway(clock=lambda: now[0])
    token = signed(claims(exp=NOW + 10_000))
    assert send(gateway, body=CHAT, headers=bearer(token))[0].status == 200
    upstreams.jwks_down = True
    now[0] += 3600  # keys are stale, the host is down: they keep working
    gateway.auth.cache = type(gateway.auth.cache)()  # forget the verified token itself
    assert send(gateway, body=CHAT, headers=bearer(token))[0].status == 200

    down = Upstreams()
    down.jwks_down = True
    gateway, _, _ = identity_gateway(upstreams=down)
    response, body = send(
        gateway,
        path="/anthropic/v1/messages",
        body={"model": "claude-x"},
        headers={"x-api-key": signed(claims())},
    )
    assert response.status == 503
    parsed = json.loads(body)
    assert parsed["type"] == "error" and "EDGERELAY_JWKS_URL" in parsed["error"]["message"]


class LeavesDuringJwks(Upstreams):
    """The first JWKS download is cut short by the request that started it going away (its
    task cancelled on the server); later downloads succeed."""

    def __init__(self) -> None:
        super().__init__()
        self.cancel_next_jwks = True

    def __call__(self, request):
        if request.url == JWKS_URL and self.cancel_next_jwks:
            self.cancel_next_jwks = False
            raise asyncio.CancelledError
        return super().__call__(request)


def test_a_jwks_download_cut_by_its_client_leaving_does_not_lock_the_others_out():
    upstreams = LeavesDuringJwks()
    gateway, fetch, _ = identity_gateway(upstreams=upstreams)
    with pytest.raises(asyncio.CancelledError):
        send(gateway, body=CHAT, headers=bearer(signed(claims())))
    # The next caller, at the same instant, downloads the keys itself: no 503 for 30 s.
    assert send(gateway, body=CHAT, headers=bearer(signed(claims())))[0].status == 200
    assert jwks_fetches(fetch) == 2


def test_the_jwks_download_is_shared_so_no_one_client_aborts_it():
    gateway, fetch, _ = identity_gateway()
    assert send(gateway, body=CHAT, headers=bearer(signed(claims())))[0].status == 200
    (download,) = [r for r in fetch.requests if r.url == JWKS_URL]
    assert download.shared  # a Worker does not tie it to the starting request's abort signal


def test_jwks_cache_control_sets_the_lifetime_within_floor_and_ceiling():
    from edgerelay.core.identity.jwks import MAX_TTL, MIN_TTL, cache_ttl

    assert cache_ttl("public, max-age=3600") == 3600
    assert cache_ttl("max-age=5") == MIN_TTL
    assert cache_ttl("no-store") == MIN_TTL
    assert cache_ttl("max-age=99999999") == MAX_TTL
    assert cache_ttl("max-age=100, s-maxage=7200") == 7200


# --- origins -------------------------------------------------------------------------------


def test_a_foreign_origin_is_refused_before_any_upstream_call_even_a_simple_post():
    gateway, fetch, _ = identity_gateway(
        {"EDGERELAY_CORS_ORIGINS": "https://app.example", "EDGERELAY_ALLOW_ANONYMOUS": "true"}
    )
    headers = {"origin": "https://evil.example", "content-type": "text/plain"}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    response, out = send(gateway, body=body, headers=headers)
    assert response.status == 403 and "origin" in json.loads(out)["error"]["message"]
    response, out = send(
        gateway, path="/gemini/v1beta/models/gemini-x:generateContent", body={}, headers=headers
    )
    assert response.status == 403 and json.loads(out)["error"]["status"] == "PERMISSION_DENIED"
    assert fetch.requests == []
    allowed = {"origin": "https://app.example", **bearer(CLIENT_KEY)}
    response, _ = send(gateway, body=body, headers=allowed)
    assert response.status == 200


def test_any_origin_changes_nothing():
    gateway, _, _ = identity_gateway({"EDGERELAY_CORS_ORIGINS": "*"})
    headers = {"origin": "https://anywhere.example", **bearer(CLIENT_KEY)}
    assert send(gateway, body=CHAT, headers=headers)[0].status == 200


# --- sessions ------------------------------------------------------------------------------


def test_sessions_success_failure_wrong_hostname_and_reuse():
    gateway, fetch, upstreams = identity_gateway(
        {"EDGERELAY_TURNSTILE_HOSTNAMES": "app.example", "EDGERELAY_TURNSTILE_SITE_KEY": "0x4AAA"}
    )
    response, body = send(gateway, "GET", "/v1/sessions")
    assert json.loads(body) == {"enabled": True, "site_key": "0x4AAA"}
    response, body = send(gateway, "POST", "/v1/sessions", {"turnstile_token": "pass-1"})
    assert response.status == 200
    answer = json.loads(body)
    assert answer["expires_at"] == int(NOW) + 900
    # the session calls models; its client id is session:<random id>
    assert send(gateway, body=CHAT, headers=bearer(answer["token"]))[0].status == 200
    from tests.support.drive import drive

    who = drive(gateway.auth.identify(bearer(answer["token"]), False))
    assert who.client_id.startswith("session:") and who.policy.name == "anonymous"
    # the same Turnstile token again: siteverify says duplicate
    response, body = send(gateway, "POST", "/v1/sessions", {"turnstile_token": "pass-1"})
    assert response.status == 401 and "invalid" in json.loads(body)["error"]["message"]
    assert send(gateway, "POST", "/v1/sessions", {"turnstile_token": "fail-1"})[0].status == 401
    upstreams.turnstile_hostname = "evil.example"
    assert send(gateway, "POST", "/v1/sessions", {"turnstile_token": "pass-2"})[0].status == 401
    assert send(gateway, "POST", "/v1/sessions", {"nope": 1})[0].status == 400
    verify = next(r for r in fetch.requests if "siteverify" in r.url)
    assert json.loads(verify.body)["remoteip"] == "203.0.113.9"


def test_sessions_get_the_anonymous_policy_and_no_passthrough():
    gateway, _fetch, upstreams = identity_gateway()
    _, body = send(gateway, "POST", "/v1/sessions", {"turnstile_token": "pass-x"})
    token = json.loads(body)["token"]
    response, out = send(
        gateway,
        path="/anthropic/v1/messages",
        body={"model": "claude-x"},
        headers={"x-api-key": token},
    )
    assert response.status == 403 and json.loads(out)["error"]["type"] == "permission_error"
    assert upstreams.model_requests == []


# --- canaries ------------------------------------------------------------------------------


def test_canary_secrets_never_in_a_response_or_a_log_line(caplog):
    gateway, _, _ = identity_gateway()
    bodies = []
    for headers in ({}, bearer(CLIENT_KEY), bearer(CLIENT_KEY + "x"), bearer(hs256(claims()))):
        for method, path, _ in MODEL_ROUTES:
            response, body = send(
                gateway, method, path, CHAT if method == "POST" else None, headers
            )
            bodies.append(body)
            bodies += [f"{k}: {v}".encode() for k, v in response.headers]
    bodies.append(send(gateway, "POST", "/v1/sessions", {"turnstile_token": "pass-c"})[1])
    bodies.append(caplog.text.encode())
    no_canary(*bodies)


def test_credentials_are_never_forwarded_upstream():
    gateway, _, upstreams = identity_gateway()
    send(
        gateway,
        path="/openai/v1/chat/completions",
        body={"model": "gpt-4o"},
        headers=bearer(CLIENT_KEY),
    )
    send(
        gateway,
        path="/anthropic/v1/messages",
        body={"model": "claude-x"},
        headers={"x-api-key": CLIENT_KEY},
    )
    send(
        gateway,
        body={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        headers=bearer(CLIENT_KEY),
    )
    assert len(upstreams.model_requests) == 3
    for request in upstreams.model_requests:
        assert CLIENT_KEY not in json.dumps(dict(request.headers))


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"EDGERELAY_JWKS_URL": "http://idp.example/jwks"}, "EDGERELAY_JWKS_URL"),
        ({"EDGERELAY_JWKS_URL": "http://127.0.0.1.evil.example/"}, "EDGERELAY_JWKS_URL"),
        ({"EDGERELAY_JWT_SECRET": "short"}, "EDGERELAY_JWT_SECRET"),
        ({"EDGERELAY_TURNSTILE_SECRET": "x"}, "EDGERELAY_SESSION_SECRET"),
        ({"EDGERELAY_CLIENT_KEYS": "sha256:zz"}, "EDGERELAY_CLIENT_KEYS"),
        ({"EDGERELAY_CLIENT_KEYS": "tiny"}, "EDGERELAY_CLIENT_KEYS"),
        ({"EDGERELAY_ALLOW_ANONYMOUS": "maybe"}, "EDGERELAY_ALLOW_ANONYMOUS"),
        ({"EDGERELAY_JWT_LEEWAY": "-1"}, "EDGERELAY_JWT_LEEWAY"),
        ({"EDGERELAY_CONFIG": "[policies.x]\nmax_tokens = 0\n"}, "EDGERELAY_CONFIG.policies.x"),
        (
            {"EDGERELAY_CONFIG": '[clients.a]\nkey = "sha256:' + "0" * 64 + '"\npolicy = "nope"\n'},
            "EDGERELAY_CONFIG.clients.a.policy",
        ),
    ],
)
def test_bad_identity_settings_are_named_and_never_quoted(env, setting):
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    assert caught.value.setting.startswith(setting)
    for value in env.values():
        if len(value) > 4:
            assert value not in str(caught.value)


def test_loopback_jwks_urls_are_allowed_for_tests():
    for url in ("http://127.0.0.1:9/jwks", "http://localhost:9/jwks", "http://[::1]:9/jwks"):
        assert load_config({"EDGERELAY_JWKS_URL": url}).identity.jwks_url == url


def test_gateways_built_per_request_from_one_config_share_the_jwks_and_verified_tokens():
    # The Worker builds a Gateway per request (for the request's abort signal) and keeps the
    # configuration: the identity caches ride on the configuration, not on the Gateway.
    from edgerelay.core import Gateway

    verifier = FakeVerifier()
    first, fetch, _ = identity_gateway(verifier=verifier)
    token = signed(claims())
    for _ in range(3):
        gateway = Gateway(
            first.config,
            fetch,
            clock=lambda: NOW,
            new_id=lambda: "x",
            verifier=verifier,
            target="worker",
        )
        assert send(gateway, body=CHAT, headers=bearer(token))[0].status == 200
    assert jwks_fetches(fetch) == 1 and verifier.calls == 1
