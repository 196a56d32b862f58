"""The Lambda's secure defaults: with no identity configured every model route is a 401 naming
the settings (health stays open); EDGERELAY_ALLOW_ANONYMOUS=true serves anyone; a JWKS token is
checked with the CPython verifier; cryptography is imported only when EDGERELAY_JWKS_URL is set."""

import os

import jwt
import pytest

from functions.aws_lambda.handler import BufferedHandler
from tests.aws_lambda.lambda_events import event
from tests.support.fake_fetch import FakeFetch, FakeResponse
from tests.support.fresh_python import run_python
from tests.support.jwt_keys import JwksServer, claims, make_key

ROUTES = [
    ("POST", "/v1/chat/completions"),
    ("GET", "/v1/models"),
    ("POST", "/openai/v1/chat/completions"),
    ("POST", "/anthropic/v1/messages"),
]


def call(handler, method, path, body=None, headers=None):
    body = body or {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}
    sent = event("http-api-v2", body if method == "POST" else None, method=method, path=path)
    sent["headers"] = {**sent.get("headers", {}), **(headers or {})}
    result = handler(sent, None)
    return result["statusCode"], result["body"]


@pytest.fixture
def handler_for():
    made = []

    def make(env, fetch=None):
        handler = BufferedHandler.from_env(env, fetch or FakeFetch(lambda r: FakeResponse(500)))
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.close()


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_defaults_refuse_anonymous_model_calls_naming_the_settings(handler_for, method, path):
    status, body = call(handler_for({}), method, path)
    assert status == 401
    assert "EDGERELAY_JWKS_URL" in body and "EDGERELAY_ALLOW_ANONYMOUS" in body


def test_health_and_sessions_stay_open_and_anonymous_can_be_allowed(handler_for):
    assert call(handler_for({}), "GET", "/healthz")[0] == 200
    assert call(handler_for({}), "GET", "/v1/sessions")[0] == 200
    allowed = handler_for({"EDGERELAY_ALLOW_ANONYMOUS": "true"})
    assert call(allowed, "POST", "/v1/chat/completions")[0] == 200


def test_a_jwks_token_is_checked_by_the_cpython_verifier(handler_for):
    key = make_key("ES256")
    with JwksServer([key]) as jwks:
        from edgerelay.transports.httpx_fetch import HttpxFetch

        # the real httpx Fetch, as deployed: the JWKS comes from the loopback server
        handler = handler_for({"EDGERELAY_JWKS_URL": jwks.url}, HttpxFetch())
        good = {"authorization": "Bearer " + key.mint(claims())}
        assert call(handler, "POST", "/v1/chat/completions", headers=good)[0] == 200
        forged = {"authorization": "Bearer " + make_key("ES256", kid=key.kid).mint(claims())}
        assert call(handler, "POST", "/v1/chat/completions", headers=forged)[0] == 401


@pytest.mark.parametrize(
    ("env", "imported"), [({}, False), ({"EDGERELAY_JWKS_URL": "https://idp.example/jwks"}, True)]
)
def test_cryptography_is_imported_only_with_a_jwks_url(env, imported):
    probe = (
        "import sys; from functions.aws_lambda.app import create_app; create_app(); "
        "print(int('cryptography' in sys.modules), int('jwt' in sys.modules))"
    )
    done = run_python(probe, env=env, check=True)
    assert done.stdout.split() == (["1", "1"] if imported else ["0", "0"])


HS256_SECRET = "s" * 40  # long enough for EDGERELAY_JWT_SECRET


@pytest.mark.parametrize(
    ("env", "credential"),
    [
        ({"EDGERELAY_CLIENT_KEYS": "client-key-0123456789"}, "client-key-0123456789"),
        (
            {"EDGERELAY_JWT_SECRET": HS256_SECRET},
            jwt.encode(claims(), HS256_SECRET, algorithm="HS256"),
        ),
    ],
    ids=["client-keys", "hs256-secret"],
)
def test_identity_without_a_jwks_url_never_imports_cryptography(env, credential):
    # Both Lambda entry points imported, the app built and an authenticated call answered:
    # a client key or an HS256 token is checked by core alone, so the cold start and the
    # request never load PyJWT or cryptography.
    probe = (
        "import sys\n"
        "import functions.aws_lambda.stream_loop\n"
        "from functions.aws_lambda.handler import BufferedHandler\n"
        "from tests.aws_lambda.lambda_events import event\n"
        "handler = BufferedHandler.from_env()\n"
        "body = {'model': 'mock/echo', 'messages': [{'role': 'user', 'content': 'hi'}]}\n"
        "sent = event('http-api-v2', body, method='POST', path='/v1/chat/completions')\n"
        "sent['headers']['authorization'] = 'Bearer ' + sys.argv[1]\n"
        "status = handler(sent, None)['statusCode']\n"
        "print(status, int('cryptography' in sys.modules), int('jwt' in sys.modules))\n"
    )
    # EDGERELAY_LOG=off: stdout is the probe's answer alone.
    done = run_python(probe, credential, env={**env, "EDGERELAY_LOG": "off"}, check=True)
    assert done.stdout.split() == ["200", "0", "0"]


def test_the_shipped_deploy_configurations_do_not_allow_anonymous_use():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for path in ("functions/aws_lambda/template.yaml", "wrangler.toml"):
        with open(os.path.join(root, path), encoding="utf-8") as f:
            assert "EDGERELAY_ALLOW_ANONYMOUS" not in f.read(), path
