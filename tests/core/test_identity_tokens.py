"""Token parsing and claim checks in core: shapes, base64url/JSON, HS256, exp/nbf/iat/iss/aud,
and malformed tokens of every shape (hypothesis) failing as InvalidCredential, never crashing."""

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from edgerelay.core.identity.authenticate import allowed_algorithms, credential_of
from edgerelay.core.identity.tokens import (
    ClaimRules,
    InvalidCredential,
    b64url_encode,
    check_claims,
    looks_like_jwt,
    mint_hs256,
    parse_jwt,
    verify_hs256,
)

SECRET = b"s" * 32
NOW = 1_760_000_000.0


def test_shapes_decide_the_kind():
    token = mint_hs256({"sub": "a", "exp": NOW + 60}, SECRET)
    assert looks_like_jwt(token)
    assert not looks_like_jwt("sk-live-abc.def")  # two segments: a client key
    assert not looks_like_jwt("a..b")  # an empty segment
    assert not looks_like_jwt("a.b.c=")  # padding is not base64url as JWS uses it
    assert not looks_like_jwt("a.b.c.d")


def test_hs256_round_trip_and_tamper():
    token = mint_hs256({"sub": "a", "exp": NOW + 60}, SECRET)
    jwt = parse_jwt(token)
    verify_hs256(jwt, SECRET)
    with pytest.raises(InvalidCredential):
        verify_hs256(jwt, b"t" * 32)
    head, _body, sig = token.split(".")
    other = b64url_encode(json.dumps({"sub": "b", "exp": NOW + 60}).encode())
    with pytest.raises(InvalidCredential):
        verify_hs256(parse_jwt(f"{head}.{other}.{sig}"), SECRET)


def test_alg_none_is_never_hs256():
    head = b64url_encode(b'{"alg":"none"}')
    body = b64url_encode(b'{"sub":"a","exp":1}')
    jwt = parse_jwt(f"{head}.{body}.{b64url_encode(b'x')}")
    with pytest.raises(InvalidCredential):
        verify_hs256(jwt, SECRET)


@pytest.mark.parametrize(
    ("claims", "expired"),
    [
        ({"sub": "a", "exp": NOW - 31}, True),
        ({"sub": "a"}, False),  # no exp at all
        ({"sub": "a", "exp": "soon"}, False),
        ({"sub": "a", "exp": True}, False),
        ({"sub": "a", "exp": NOW + 60, "nbf": NOW + 31}, False),
        ({"sub": "a", "exp": NOW + 60, "iat": NOW + 31}, False),
        ({"sub": "", "exp": NOW + 60}, False),
        ({"sub": 7, "exp": NOW + 60}, False),
        ({"sub": "a", "exp": NOW + 60, "iss": "https://evil.example/", "aud": "edgerelay"}, False),
        ({"sub": "a", "exp": NOW + 60, "iss": "https://idp.example/", "aud": "other"}, False),
        ({"sub": "a", "exp": NOW + 60, "iss": "https://idp.example/"}, False),  # no aud
    ],
)
def test_claims_refused(claims, expired):
    rules = ClaimRules(30, "https://idp.example/", "edgerelay")
    if "iss" not in claims:  # these cases are about time and sub: issuer and audience are right
        claims = {**claims, "iss": "https://idp.example/", "aud": "edgerelay"}
    with pytest.raises(InvalidCredential) as caught:
        check_claims(claims, NOW, rules)
    assert caught.value.expired is expired


def test_claims_within_leeway_and_audience_lists_pass():
    rules = ClaimRules(30, "https://idp.example/", "edgerelay")
    claims = {
        "sub": "a",
        "iss": "https://idp.example/",
        "aud": ["other", "edgerelay"],
        "exp": NOW - 29,
        "nbf": NOW + 29,
        "iat": NOW + 29,
    }
    check_claims(claims, NOW, rules)
    check_claims({"sub": "a", "exp": NOW + 1}, NOW, ClaimRules(0))


def test_key_algorithms_never_hs256_or_none():
    assert allowed_algorithms({"kty": "RSA"}) == ("RS256",)
    assert allowed_algorithms({"kty": "EC", "crv": "P-256"}) == ("ES256",)
    assert allowed_algorithms({"kty": "OKP", "crv": "Ed25519"}) == ("EdDSA",)
    assert allowed_algorithms({"kty": "RSA", "alg": "HS256"}) == ()
    assert allowed_algorithms({"kty": "RSA", "alg": "RS256"}) == ("RS256",)
    assert allowed_algorithms({"kty": "EC", "crv": "P-384"}) == ()
    assert allowed_algorithms({"kty": "oct", "k": "c2VjcmV0"}) == ()


def test_credentials_come_from_bearer_everywhere_and_sdk_headers_on_passthrough():
    assert credential_of({"authorization": "Bearer abc"}, False) == "abc"
    assert credential_of({"authorization": "bearer  abc "}, False) == "abc"
    assert credential_of({"authorization": "Basic abc"}, False) is None
    assert credential_of({"x-api-key": "abc"}, False) is None
    assert credential_of({"x-api-key": "abc"}, True) == "abc"
    assert credential_of({"x-goog-api-key": "abc"}, True) == "abc"


segment = st.one_of(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=40
    ),
    st.binary(max_size=40).map(b64url_encode),
    st.one_of(
        st.dictionaries(
            st.sampled_from(["alg", "kid", "sub", "exp", "nbf", "iat", "iss", "aud", "crit"]),
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
            max_size=5,
        ),
        st.lists(st.integers(), max_size=3),
        st.integers(),
    ).map(lambda v: b64url_encode(json.dumps(v).encode())),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(segment, min_size=1, max_size=4), st.sampled_from([".", "..", "", " "]))
def test_malformed_tokens_fail_cleanly(parts, extra):
    token = ".".join(parts) + (extra if len(parts) != 3 else "")
    try:
        jwt = parse_jwt(token)
    except InvalidCredential:
        return
    # It parsed: it is three segments with JSON objects and a string alg; claims may still fail.
    assert isinstance(jwt.header["alg"], str)
    try:
        check_claims(jwt.claims, NOW, ClaimRules())
    except InvalidCredential:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
@example("\u0100.a.b")  # a character past latin-1 in a JWT-shaped credential
def test_any_text_either_parses_or_is_invalid(text):
    try:
        parse_jwt(text)
    except InvalidCredential:
        pass
