"""Gateways with identity turned on, over a FakeFetch that also serves a JWKS and a fake
Turnstile siteverify, and a stand-in ``SignatureVerifier`` (real signatures are checked by the
CPython and WebCrypto verifiers' own tests; here only core's decisions are under test)."""

from __future__ import annotations

import itertools
import json

from edgerelay.core import Gateway, Request, load_config
from edgerelay.core.identity.tokens import b64url_encode, mint_hs256
from tests.core.gateway_helpers import NOW
from tests.support.drive import collect, drive
from tests.support.fake_fetch import FakeFetch, FakeResponse

JWT_SECRET = "canary-jwt-secret-0123456789abcdef-XYZ"
SESSION_SECRET = "canary-session-secret-0123456789abcdef"
CLIENT_KEY = "canary-client-key-0123456789"
TURNSTILE_SECRET = "canary-turnstile-secret"
JWKS_URL = "https://idp.example/.well-known/jwks.json"
SITEVERIFY_URL = "https://turnstile.example/siteverify"
CANARIES = (JWT_SECRET, SESSION_SECRET, CLIENT_KEY, TURNSTILE_SECRET)

KEYS = {"keys": [{"kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB", "use": "sig"}]}


class FakeVerifier:
    """Accepts a signature that spells ``good:<kid>``; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def verify(self, alg, jwk, signing_input, signature):
        self.calls += 1
        return signature == f"good:{jwk.get('kid')}".encode()


def signed(claims: dict, kid: str | None = "k1", alg: str = "RS256", good: bool = True) -> str:
    header = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    head = b64url_encode(json.dumps(header).encode())
    body = b64url_encode(json.dumps(claims).encode())
    sig = f"good:{kid}".encode() if good else b"forged"
    return f"{head}.{body}.{b64url_encode(sig)}"


def claims(**extra) -> dict:
    return {"sub": "user-1", "iat": NOW - 10, "exp": NOW + 600, **extra}


def hs256(claims_: dict, secret: str = JWT_SECRET) -> str:
    return mint_hs256(claims_, secret.encode())


class Upstreams:
    """The JWKS host, siteverify and model upstreams in one FakeFetch handler."""

    def __init__(self, jwks=KEYS) -> None:
        self.jwks = jwks
        self.jwks_down = False
        self.jwks_headers = {"cache-control": "max-age=300"}
        self.used_turnstile: set[str] = set()
        self.turnstile_hostname = "app.example"
        self.model_requests = []

    def __call__(self, request):
        if request.url == JWKS_URL:
            if self.jwks_down:
                return FakeResponse(503, chunks=[b"down"])
            return FakeResponse(200, dict(self.jwks_headers), [json.dumps(self.jwks).encode()])
        if request.url == SITEVERIFY_URL:
            sent = json.loads(request.body)
            token = sent["response"]
            ok = sent["secret"] == TURNSTILE_SECRET and token.startswith("pass")
            ok = ok and token not in self.used_turnstile
            self.used_turnstile.add(token)
            answer = {"success": ok, "hostname": self.turnstile_hostname}
            if not ok:
                answer["error-codes"] = ["timeout-or-duplicate"]
            return FakeResponse(200, {}, [json.dumps(answer).encode()])
        self.model_requests.append(request)
        body = json.dumps({"id": "x", "object": "chat.completion", "choices": []}).encode()
        return FakeResponse(200, {"content-type": "application/json"}, [body])


def identity_gateway(env=None, *, target="worker", upstreams=None, verifier=None, clock=None):
    upstreams = upstreams or Upstreams()
    base = {
        "EDGERELAY_JWKS_URL": JWKS_URL,
        "EDGERELAY_JWT_SECRET": JWT_SECRET,
        "EDGERELAY_CLIENT_KEYS": CLIENT_KEY,
        "EDGERELAY_TURNSTILE_SECRET": TURNSTILE_SECRET,
        "EDGERELAY_SESSION_SECRET": SESSION_SECRET,
        "EDGERELAY_TURNSTILE_VERIFY_URL": SITEVERIFY_URL,
        "OPENAI_API_KEY": "sk-upstream-secret",
        "ANTHROPIC_API_KEY": "sk-ant-upstream",
        "GEMINI_API_KEY": "gm-upstream",
    }
    env = base if env is None else {**base, **env}
    env = {k: v for k, v in env.items() if v is not None}
    counter = itertools.count(1)
    fetch = FakeFetch(upstreams)
    gateway = Gateway(
        load_config(env),
        fetch,
        clock=clock or (lambda: NOW),
        new_id=lambda: f"id{next(counter)}",
        verifier=verifier if verifier is not None else FakeVerifier(),
        target=target,
    )
    return gateway, fetch, upstreams


def send(gateway, method="POST", path="/v1/chat/completions", body=None, headers=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
    response = drive(gateway.handle(Request(method, path, "", headers or {}, raw, "203.0.113.9")))
    chunks = collect(response.stream) if response.stream is not None else None
    drive(response.aclose())
    return response, (b"".join(chunks) if chunks is not None else response.body)


def bearer(token: str) -> dict:
    return {"authorization": f"Bearer {token}"}
