"""Identity end to end on the real server: tokens minted with real keys (RSA 2048, P-256,
Ed25519, HS256) and checked by the CPython verifier against a loopback JWKS server; the three
official SDKs with a token as their api_key; a refused foreign origin; canary secrets never in a
response or a log line."""

import base64
import hashlib
import hmac
import json
import logging
import time

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from tests.server.test_passthrough_sdks import answer, env_for
from tests.support.drive import drive
from tests.support.jwt_keys import ALGORITHMS, JwksServer, claims, make_key

JWT_SECRET = "canary-jwt-secret-9f8e7d6c5b4a39281706"
SESSION_SECRET = "canary-session-secret-0a1b2c3d4e5f6789"
CLIENT_KEY = "canary-client-key-5f4e3d2c1b0a"
CANARIES = (JWT_SECRET, SESSION_SECRET, CLIENT_KEY)
KEYS = {alg: make_key(alg) for alg in ALGORITHMS}
CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture(scope="module")
def jwks():
    with JwksServer(list(KEYS.values())) as server:
        yield server


def identity_env(jwks, **extra):
    return {
        "EDGERELAY_JWKS_URL": jwks.url,
        "EDGERELAY_JWT_SECRET": JWT_SECRET,
        "EDGERELAY_CLIENT_KEYS": CLIENT_KEY,
        **extra,
    }


def post(gateway, token=None, body=CHAT, path="/v1/chat/completions", headers=None):
    sent = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(gateway.url + path, json=body, headers={**sent, **(headers or {})})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_tokens_signed_with_real_keys(gateway_for, jwks, alg):
    gateway = gateway_for(identity_env(jwks))
    key = KEYS[alg]
    response = post(gateway, key.mint(claims()))
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "hello there"
    # the same kid, signed by another key of the same type: a wrong signature
    forged = make_key(alg, kid=key.kid).mint(claims())
    assert post(gateway, forged).status_code == 401
    expired = key.mint(claims(lifetime=-120))
    response = post(gateway, expired)
    assert response.status_code == 401 and "expired" in response.json()["error"]["message"]
    assert post(gateway, key.mint(claims(nbf=claims()["iat"] + 3600))).status_code == 401


def test_hs256_signed_with_the_public_key_and_alg_none_are_refused(gateway_for, jwks):
    gateway = gateway_for(identity_env(jwks, EDGERELAY_JWT_SECRET=None))
    public_pem = json.dumps(KEYS["RS256"].jwk).encode()
    head = b64(json.dumps({"alg": "HS256", "kid": KEYS["RS256"].kid}).encode())
    body = b64(json.dumps(claims()).encode())
    sig = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert post(gateway, f"{head}.{body}.{b64(sig)}").status_code == 401
    none = b64(json.dumps({"alg": "none", "kid": KEYS["RS256"].kid}).encode())
    assert post(gateway, f"{none}.{body}.{b64(b'x')}").status_code == 401


def test_hs256_tokens_and_client_keys(gateway_for, jwks):
    import jwt

    gateway = gateway_for(identity_env(jwks))
    token = jwt.encode(claims(), JWT_SECRET, algorithm="HS256")
    assert post(gateway, token).status_code == 200
    assert post(gateway, CLIENT_KEY).status_code == 200
    assert post(gateway, "sk-someone-elses-key").status_code == 401
    response = post(gateway)
    assert response.status_code == 401 and "required" in response.json()["error"]["message"]


def test_issuer_and_audience(gateway_for, jwks):
    env = identity_env(
        jwks, EDGERELAY_JWT_ISSUER="https://tenant.example/", EDGERELAY_JWT_AUDIENCE="edgerelay"
    )
    gateway = gateway_for(env)
    key = KEYS["ES256"]
    assert (
        post(gateway, key.mint(claims(iss="https://tenant.example/", aud="edgerelay"))).status_code
        == 200
    )
    assert (
        post(gateway, key.mint(claims(iss="https://other.example/", aud="edgerelay"))).status_code
        == 401
    )
    assert (
        post(gateway, key.mint(claims(iss="https://tenant.example/", aud="other"))).status_code
        == 401
    )


def test_unknown_kid_refetches_once_per_30_s_however_many_kids_arrive():
    start = int(time.time())
    now = [start]

    def fresh(**extra):  # valid by the gateway's frozen clock, however slow this machine is
        return claims(**{"iat": start, "exp": start + 3600, **extra})

    key = make_key("RS256", kid="known")
    with JwksServer([key]) as jwks:
        from tests.support.loopback import GatewayServer

        with GatewayServer(identity_env(jwks), clock=lambda: now[0]) as gateway:
            assert post(gateway, key.mint(fresh())).status_code == 200
            assert jwks.requests == 1
            now[0] = start + 30  # the re-fetch window is open again
            stranger = make_key("EdDSA", kid="stranger")
            for i in range(100):
                token = stranger.mint(fresh(sub=f"u{i}"), kid=f"flood-{i}")
                assert post(gateway, token).status_code == 401
            assert jwks.requests == 2  # one re-fetch for the whole burst
            assert post(gateway, key.mint(fresh(sub="still-fine"))).status_code == 200


def test_jwks_host_down_keeps_cached_keys_and_none_cached_is_503():
    key = make_key("ES256")
    with JwksServer([key]) as jwks:
        from tests.support.loopback import GatewayServer

        with GatewayServer(identity_env(jwks)) as gateway:
            assert post(gateway, key.mint(claims())).status_code == 200
            jwks.down = True
            assert post(gateway, key.mint(claims(sub="another"))).status_code == 200
        with GatewayServer(identity_env(jwks)) as fresh:
            response = post(fresh, key.mint(claims()))
            assert response.status_code == 503
            assert "EDGERELAY_JWKS_URL" in response.json()["error"]["message"]


# -- the official SDKs with a token as their api_key ----------------------------------------


def test_each_official_sdk_works_with_a_token_as_its_api_key(upstream, gateway_for, jwks):
    upstream.handler = answer
    gateway = gateway_for({**env_for(upstream), **identity_env(jwks)})
    token = KEYS["RS256"].mint(claims())
    messages = [{"role": "user", "content": "Say hello"}]

    oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key=token, max_retries=0)
    echo = oa.chat.completions.create(model="mock/echo", messages=messages)
    assert echo.choices[0].message.content == "Say hello"
    native = openai.OpenAI(base_url=gateway.url + "/openai/v1", api_key=token, max_retries=0)
    assert native.chat.completions.create(model="gpt-4.1-mini", messages=messages).choices
    an = anthropic.Anthropic(base_url=gateway.url + "/anthropic", api_key=token, max_retries=0)
    message = an.messages.create(model="claude-test-model", max_tokens=50, messages=messages)
    assert message.content[0].text == "Hello there"
    gm = genai.Client(
        api_key=token, http_options=genai_types.HttpOptions(base_url=gateway.url + "/gemini")
    )
    assert gm.models.generate_content(model="gemini-2.5-flash", contents="hi").text
    # the token never reaches an upstream
    for seen in upstream.seen:
        assert token not in json.dumps(dict(seen.headers)) + seen.path

    # and each SDK raises its own authentication error without one that is valid
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=gateway.url + "/openai/v1", api_key="wrong", max_retries=0
        ).chat.completions.create(model="gpt-4.1-mini", messages=messages)
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(
            base_url=gateway.url + "/anthropic", api_key="wrong", max_retries=0
        ).messages.create(model="c", max_tokens=5, messages=messages)
    from google.genai import errors as genai_errors

    bad = genai.Client(
        api_key="wrong", http_options=genai_types.HttpOptions(base_url=gateway.url + "/gemini")
    )
    with pytest.raises(genai_errors.ClientError) as caught:
        bad.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert caught.value.code == 401


# -- origins and canaries -------------------------------------------------------------------


def test_a_text_plain_post_from_a_foreign_origin_is_refused_before_the_upstream(
    upstream, gateway_for
):
    upstream.handler = answer
    env = {**env_for(upstream), "EDGERELAY_CORS_ORIGINS": "https://app.example"}
    gateway = gateway_for(env)
    body = json.dumps({"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "x"}]})
    for path in ("/v1/chat/completions", "/openai/v1/chat/completions"):
        response = httpx.post(
            gateway.url + path,
            content=body,
            headers={"content-type": "text/plain;charset=UTF-8", "origin": "https://evil.example"},
        )
        assert response.status_code == 403
    assert upstream.seen == []
    allowed = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=body,
        headers={"content-type": "text/plain", "origin": "https://app.example"},
    )
    assert allowed.status_code == 200 and len(upstream.seen) == 1


def test_canary_secrets_never_in_a_response_or_a_log_line(gateway_for, jwks, caplog):
    caplog.set_level(logging.DEBUG)
    gateway = gateway_for(
        identity_env(
            jwks,
            EDGERELAY_SESSION_SECRET=SESSION_SECRET,
            EDGERELAY_TURNSTILE_SECRET="canary-turnstile-x",
            EDGERELAY_TURNSTILE_VERIFY_URL="http://127.0.0.1:9/",
        )
    )
    seen = []
    for token in (None, CLIENT_KEY, CLIENT_KEY + "x", JWT_SECRET, "a.b.c", "%%%"):
        for path in ("/v1/chat/completions", "/v1/models", "/anthropic/v1/messages"):
            response = post(gateway, token, path=path)
            seen.append(response.text + json.dumps(dict(response.headers)))
    response = httpx.post(gateway.url + "/v1/sessions", json={"turnstile_token": "t"})
    assert response.status_code == 503  # the verify URL is a closed port
    seen.append(response.text)
    seen.append(caplog.text)
    for canary in (*CANARIES, "canary-turnstile-x"):
        assert all(canary not in text for text in seen)


def test_the_verifier_reports_bad_keys_as_unsupported():
    from edgerelay.core.identity import UnsupportedKey
    from edgerelay.transports.signatures import CryptographyVerifier

    verifier = CryptographyVerifier()
    with pytest.raises(UnsupportedKey):
        drive(verifier.verify("RS256", {"kty": "RSA", "n": "!!"}, b"x", b"y"))
    with pytest.raises(UnsupportedKey):
        drive(verifier.verify("HS256", {"kty": "oct", "k": "eA"}, b"x", b"y"))
    es = KEYS["ES256"]
    assert drive(verifier.verify("ES256", es.jwk, b"a.b", b"short")) is False
