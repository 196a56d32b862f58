"""The Worker under the real local runtime (workerd with the Python runtime, via wrangler dev):
what the Pyodide-in-Node tests cannot show — the real request and stream plumbing, the vendored
SDK as the runtime loads it, vars and secrets as the runtime hands them over, loopback fetches
leaving workerd, workerd's own WebCrypto. Two starts for the module: the Worker as shipped (the
secure default), and one with a loopback JWKS and upstream, where JWTs (RS256, ES256, EdDSA)
are checked before a stream is served. Streaming is proven lock-step, as elsewhere: the
upstream sends chunk k+1 only after the test has read chunk k from the Worker."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.support.jwt_keys import make_key
from tests.support.loopback import WAIT, FakeUpstream, Reply, Seen, sse_frames

pytestmark = pytest.mark.workerd

CANARY_KEY = "sk-canary-provider-key-3c91"
ISSUER = "https://issuer.test/"
AUDIENCE = "edgerelay-tests"
SSE = {"content-type": "text/event-stream; charset=utf-8"}
JSON = {"content-type": "application/json"}
KEYS = {alg: make_key(alg, kid=f"{alg.lower()}-live") for alg in ("RS256", "ES256", "EdDSA")}
STRANGER = make_key("RS256", kid=KEYS["RS256"].kid)  # same kid, a key the JWKS does not serve


def token(alg: str = "RS256", key=None, **claims) -> str:
    now = int(time.time())
    body = {"sub": f"user-{alg.lower()}", "iss": ISSUER, "aud": AUDIENCE, "iat": now}
    return (key or KEYS[alg]).mint({**body, "exp": now + 600, **claims})


def chat(model: str, content: str = "hello through identity", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def chunk(content: str) -> bytes:
    delta = {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}
    body = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x", **delta}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class IdentityProvider:
    """The loopback host: the JWKS at /jwks.json (hits counted), an OpenAI-style upstream at
    /v1/chat/completions streaming ``words`` lock-step."""

    words = ["Signed", " in", " and", " streaming."]

    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.jwks_hits = 0
        fake.handler = self.answer

    def answer(self, seen: Seen) -> Reply:
        if seen.path == "/jwks.json":
            self.jwks_hits += 1
            headers = {**JSON, "cache-control": "public, max-age=600"}
            body = {"keys": [key.jwk for key in KEYS.values()]}
            return Reply(200, headers, [json.dumps(body).encode()])
        frames = [chunk(w) for w in self.words] + [b"data: [DONE]\n\n"]
        return Reply(200, SSE, frames, lockstep=True)


@pytest.fixture(scope="module")
def provider():
    with FakeUpstream() as fake:
        yield IdentityProvider(fake)


@pytest.fixture(scope="module")
def shipped(start_worker):
    """The Worker as wrangler.toml ships it: no identity, no EDGERELAY_ALLOW_ANONYMOUS."""
    return start_worker()


@pytest.fixture(scope="module")
def guarded(start_worker, provider):
    return start_worker(
        vars={
            "EDGERELAY_JWKS_URL": provider.fake.url + "/jwks.json",
            "EDGERELAY_JWT_ISSUER": ISSUER,
            "EDGERELAY_JWT_AUDIENCE": AUDIENCE,
            "OPENAI_BASE_URL": provider.fake.url + "/v1",
        },
        secrets={"OPENAI_API_KEY": CANARY_KEY},
    )


def post_chat(worker, body: dict, credential: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {credential}"} if credential else {}
    return httpx.post(worker.url + "/v1/chat/completions", json=body, headers=headers, timeout=WAIT)


def streamed_text(worker, body: dict, credential: str, release=None) -> str:
    text = ""
    with httpx.stream(
        "POST",
        worker.url + "/v1/chat/completions",
        json={**body, "stream": True},
        headers={"authorization": f"Bearer {credential}"},
        timeout=WAIT,
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = []
        for frame in sse_frames(response):
            frames.append(frame)
            if frame != b"data: [DONE]":
                choice = json.loads(frame.removeprefix(b"data: "))["choices"]
                text += (choice[0]["delta"].get("content") or "") if choice else ""
            if release:
                release()  # the upstream's next chunk leaves only after this one arrived
    assert frames[-1] == b"data: [DONE]"
    return text


# --- as shipped --------------------------------------------------------------------------


def test_shipped_worker_refuses_anonymous_model_calls_naming_the_settings(shipped):
    response = post_chat(shipped, chat("mock/echo"))
    assert response.status_code == 401
    error = response.json()["error"]  # OpenAI's shape on /v1/...
    for setting in ("EDGERELAY_JWKS_URL", "EDGERELAY_CLIENT_KEYS", "EDGERELAY_ALLOW_ANONYMOUS"):
        assert setting in error["message"]
    models = httpx.get(shipped.url + "/v1/models", timeout=WAIT)
    assert models.status_code == 401
    anthropic = httpx.post(
        shipped.url + "/anthropic/v1/messages",
        json={"model": "claude-x", "max_tokens": 5, "messages": []},
        timeout=WAIT,
    )
    assert anthropic.status_code == 401
    assert anthropic.json()["type"] == "error"  # Anthropic's own error shape there


def test_shipped_worker_keeps_health_and_the_sessions_probe_open(shipped):
    health = httpx.get(shipped.url + "/healthz", timeout=WAIT)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    sessions = httpx.get(shipped.url + "/v1/sessions", timeout=WAIT)
    assert sessions.status_code == 200
    assert sessions.json()["enabled"] is False


# --- with a JWKS ---------------------------------------------------------------------------


def test_jwt_signatures_are_checked_by_workerd_webcrypto_and_the_stream_flows(guarded, provider):
    assert post_chat(guarded, chat("mock/echo")).status_code == 401  # no credential
    # RS256 and EdDSA through mock/echo, ES256 through the loopback upstream in lock-step.
    for alg in ("RS256", "EdDSA"):
        assert streamed_text(guarded, chat("mock/echo", "one two"), token(alg)) == "one two"
    before = len(provider.fake.seen)
    text = streamed_text(guarded, chat("gpt-x"), token("ES256"), provider.fake.release)
    assert text == "".join(IdentityProvider.words)
    upstream_calls = [s for s in provider.fake.seen[before:] if s.path.startswith("/v1/")]
    assert [s.headers["Authorization"] for s in upstream_calls] == [f"Bearer {CANARY_KEY}"]
    # One JWKS fetch served every request: the isolate keeps its gateway and the keys.
    assert provider.jwks_hits == 1


def test_bad_tokens_are_401_before_any_upstream_call(guarded, provider):
    before = len(provider.fake.seen)
    forged = token("RS256", key=STRANGER)  # right kid, wrong key
    expired = token("ES256", exp=int(time.time()) - 3600, iat=int(time.time()) - 7200)
    foreign = token("RS256", aud="someone-else")
    for credential in (forged, expired, foreign, "not.a.jwt", forged[:-4] + "AAAA"):
        response = post_chat(guarded, chat("gpt-x"), credential)
        assert response.status_code == 401, credential
        message = response.json()["error"]["message"]
        assert "invalid" in message or "expired" in message
    assert [s.path for s in provider.fake.seen[before:]] == []  # nothing reached the provider


def test_no_token_or_key_in_the_runtime_log(guarded):
    log = guarded.log()
    assert CANARY_KEY not in log
    assert token("RS256").rsplit(".", 1)[0][:40] not in log  # no JWT header+payload prefix
