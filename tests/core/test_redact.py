"""No configured secret leaves the gateway: not in an error body (the gateway's own or an
upstream's, passthrough included), not in a passed-on header value, not in a log line."""

from __future__ import annotations

import json
import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgerelay.core import redact
from edgerelay.core.redact import REDACTED, Redactor
from tests.core.gateway_helpers import call, make_gateway
from tests.support.drive import collect
from tests.support.fake_fetch import FakeResponse
from tests.support.splits import random_splits

KEY = "sk-proj-abcdefghijklmnop1234wxyz"
ANT = "sk-ant-api03-ZYXWVUTSRQ-9876"
ENV = {"OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": ANT}
CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}


def test_text_bytes_and_the_masked_form_providers_quote():
    redactor = Redactor([KEY, ANT, "short"])
    assert redactor.text(f"key {KEY}!") == f"key {REDACTED}!"
    assert redactor.data(f"[{ANT}]".encode()) == f"[{REDACTED}]".encode()
    # OpenAI: "Incorrect API key provided: sk-proj-****…wxyz."
    masked = "Incorrect API key provided: sk-proj-***************************wxyz."
    assert redactor.text(masked) == f"Incorrect API key provided: {REDACTED}."
    assert redactor.text("short words stay") == "short words stay"  # too short to be a key
    assert not Redactor([]) and Redactor([]).text(KEY) == KEY


@given(
    st.lists(
        st.sampled_from([KEY, ANT, KEY[:-1], ANT[3:], "*", "***", "sk-proj-", "wxyz", "é", " "])
        | st.text(max_size=8),
        max_size=12,
    )
)
def test_the_quick_look_for_a_secret_changes_no_answer(pieces):
    redactor = Redactor([KEY, ANT])
    value = "".join(pieces)
    whole = [re.escape(s) for s in (KEY, ANT)]  # the pattern alone, with no quick look first
    masked = [redact._MASKED + re.escape(s[-4:]) for s in (KEY, ANT)]
    pattern = re.compile("|".join(whole + masked))
    in_bytes = re.compile("|".join(whole + masked).encode())
    assert redactor.text(value) == pattern.sub(REDACTED, value)
    assert redactor.data(value.encode()) == in_bytes.sub(REDACTED.encode(), value.encode())
    assert redactor.headers([("x", value)]) == [("x", pattern.sub(REDACTED, value))]


@pytest.mark.parametrize("seed", range(40))
def test_a_streamed_body_is_redacted_however_it_is_split(seed):
    redactor = Redactor([KEY, ANT])
    body = f'{{"error":"bad key {KEY}", "headers": {{"x-api-key": "{ANT}"}}, "k": "{KEY}"}}' * 3
    pieces = random_splits(body.encode(), seed)

    async def chunks():
        for piece in pieces:
            yield piece

    out = b"".join(collect(redactor.stream(chunks())))
    assert out == redactor.data(body.encode())
    assert KEY.encode() not in out and ANT.encode() not in out


def echoing(status):
    def answer(request):
        echoed = json.dumps({"error": {"message": f"bad: {dict(request.headers)}"}}).encode()
        headers = {
            "x-request-id": request.headers.get("authorization", "req-1"),
            "retry-after": "1",
        }
        return FakeResponse(status, headers, random_splits(echoed, status))

    return answer


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", CHAT),
        ("/v1/chat/completions", {**CHAT, "model": "anthropic/claude-x"}),
        ("/openai/v1/chat/completions", CHAT),  # passthrough: the error body streamed
        ("/anthropic/v1/messages", {"model": "claude-x", "max_tokens": 1}),
    ],
)
def test_an_upstream_that_echoes_the_key_never_shows_it_to_the_client(path, body):
    gateway, _ = make_gateway(echoing(401), ENV)
    response, chunks = call(gateway, path=path, body=body)
    sent = response.body + b"".join(chunks or [])
    assert response.status == 401
    assert KEY.encode() not in sent and ANT.encode() not in sent
    assert REDACTED.encode() in sent
    for _, value in response.headers:
        assert KEY not in value and ANT not in value


def test_a_key_in_a_passed_on_header_of_a_success_is_redacted_and_the_body_kept():
    answer = FakeResponse(
        200, {"x-request-id": "Bearer " + KEY}, [b'{"ok":"' + KEY.encode() + b'"}']
    )
    gateway, _ = make_gateway(lambda request: answer, ENV)
    response, chunks = call(gateway, path="/openai/v1/chat/completions", body=CHAT)
    assert dict(response.headers)["x-request-id"] == "Bearer " + REDACTED
    assert b"".join(chunks) == b'{"ok":"' + KEY.encode() + b'"}'  # a success goes as sent


def test_an_error_body_is_not_handed_on_natively():
    # A Worker forwards an upstream's own ReadableStream when it can: not for a rewritten body.
    answer = FakeResponse(500, {}, [KEY.encode()], native_body=object())
    gateway, _ = make_gateway(lambda request: answer, ENV)
    response, chunks = call(gateway, path="/openai/v1/chat/completions", body=CHAT)
    assert response.upstream.native_body is None
    assert b"".join(chunks) == REDACTED.encode()


def test_log_records_are_redacted_tracebacks_included():
    import io

    redactor = Redactor([KEY])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(redactor)
    logger = logging.getLogger("edgerelay.test-redact")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"upstream said {KEY}")
        except RuntimeError:
            logger.exception("failed with %s", KEY)
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert KEY not in written
    assert written.count(REDACTED) == 2 and "RuntimeError" in written


def test_a_setting_registers_its_secret(monkeypatch):
    gateway, _ = make_gateway(env=ENV)
    config = gateway.config._replace()
    monkeypatch.setattr(redact, "SECRET_FIELDS", ("cors_origins",))  # any field, for the test
    config = config._replace(cors_origins="session-secret-value-1")
    assert "session-secret-value-1" in redact.configured_secrets(config)
    assert redact.redactor_for(config).text("x session-secret-value-1") == f"x {REDACTED}"


def test_identity_secrets_are_redacted_like_provider_keys():
    secrets = {
        "EDGERELAY_JWT_SECRET": "jwt-secret-0123456789-0123456789-abc",
        "EDGERELAY_SESSION_SECRET": "session-secret-0123456789-0123456789",
        "EDGERELAY_TURNSTILE_SECRET": "turnstile-secret-0123456789",
    }
    leaked = json.dumps({"error": {"message": "echo: " + " ".join(secrets.values())}}).encode()
    answer = FakeResponse(500, {"x-request-id": secrets["EDGERELAY_SESSION_SECRET"]}, [leaked])
    env = {**ENV, **secrets, "EDGERELAY_ALLOW_ANONYMOUS": "true"}
    gateway, _ = make_gateway(lambda request: answer, env)
    for model in ("gpt-x", "anthropic/claude-x"):  # relayed and translated errors
        response, chunks = call(gateway, body={**CHAT, "model": model})
        sent = response.body + b"".join(chunks or [])
        assert response.status == 500
        assert REDACTED.encode() in sent
        for value in secrets.values():
            assert value.encode() not in sent
            assert all(value not in v for _, v in response.headers)


STORE_PASSWORD = "store-pass-0123456789/xyz"
STORE_URLS = [
    f"redis://:{STORE_PASSWORD}@127.0.0.1:6379/0",
    f"rediss://edgerelay:{STORE_PASSWORD}@cache.example:6380",
    "rediss://edgerelay:store-pass-0123456789%2Fxyz@cache.example:6380/1?ssl_cert_reqs=none",
]


@pytest.mark.parametrize("url", STORE_URLS)
def test_the_password_of_a_store_url_is_a_configured_secret(url):
    gateway, _ = make_gateway(env={**ENV, "EDGERELAY_STORE": url})
    assert STORE_PASSWORD in redact.configured_secrets(gateway.config)
    assert "edgerelay" not in redact.configured_secrets(gateway.config)  # the user is not


@pytest.mark.parametrize("url", ["memory", "redis://127.0.0.1:6379", "redis://user@host/0"])
def test_a_store_url_without_a_password_adds_no_secret(url):
    gateway, _ = make_gateway(env={**ENV, "EDGERELAY_STORE": url})
    assert gateway.config.store_secrets == ()


@pytest.mark.parametrize("url", STORE_URLS)
def test_a_store_password_never_reaches_an_error_body_a_header_or_a_log_line(url):
    import io

    def failing(request):
        raise RuntimeError(f"cannot reach {url} with {STORE_PASSWORD}")

    echoed = json.dumps({"error": {"message": f"echo {url} {STORE_PASSWORD}"}}).encode()
    env = {**ENV, "EDGERELAY_STORE": url}
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("edgerelay")
    logger.addHandler(handler)
    try:
        for handle in (lambda request: FakeResponse(500, {"x-request-id": url}, [echoed]), failing):
            gateway, _ = make_gateway(handle, env)
            handler.filters = [gateway.redactor]
            for path in ("/v1/chat/completions", "/openai/v1/chat/completions"):
                response, chunks = call(gateway, path=path, body=CHAT)
                sent = response.body + b"".join(chunks or [])
                assert response.status >= 500
                assert STORE_PASSWORD.encode() not in sent
                assert all(STORE_PASSWORD not in value for _, value in response.headers)
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "RuntimeError" in written  # the bug's traceback was logged, the password taken out
    assert STORE_PASSWORD not in written and REDACTED in written
