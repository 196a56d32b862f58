"""End to end: the official openai JS SDK and the Vercel AI SDK's default ``openai(...)``
provider (``ai`` + ``@ai-sdk/openai``: generateText, streamText, a tool loop) on /v1/responses,
against loopback Anthropic and Gemini upstreams and mock/echo (tests/js/responses_clients.mjs
under Node)."""

import json
import pathlib
import subprocess

import pytest

from tests.server.test_responses_sdks import MODELS, anthropic_reply, gemini_reply

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "js" / "responses_clients.mjs"
# openai 7, ai 7 and @ai-sdk/openai 4 need Node >= 22: the pinned npm `node` package.
NODE = ROOT / "node_modules" / "node" / "bin" / "node"
pytestmark = [
    pytest.mark.skipif(
        not NODE.exists() or not (ROOT / "node_modules" / "@ai-sdk" / "openai").is_dir(),
        reason="node_modules missing: run `npm ci` (make test-cpython does)",
    ),
    # Node's start and the SDKs' import take seconds on a busy 2-core machine; a hang is still
    # caught (the subprocess timeout below), only later.
    pytest.mark.timeout(180),
]


def client(base_url: str, model: str, scenario: str) -> dict:
    done = subprocess.run(
        [str(NODE), str(SCRIPT), base_url, model, scenario],
        capture_output=True,
        text=True,
        timeout=150,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(params=["anthropic", "gemini"])
def provider(request, upstream, gateway_for):
    upstream.handler = anthropic_reply if request.param == "anthropic" else gemini_reply
    gateway = gateway_for(
        {
            "ANTHROPIC_BASE_URL": upstream.url,
            "ANTHROPIC_API_KEY": "sk-ant-up",
            "GEMINI_BASE_URL": upstream.url,
            "GEMINI_API_KEY": "g-up",
        }
    )
    return gateway.url + "/v1", MODELS[request.param], upstream


def test_openai_js_sdk(provider):
    base_url, model, _ = provider
    got = client(base_url, model, "sdk")
    assert got["call"] == ["get_weather", {"city": "Paris"}]
    assert got["second"] == "It is 12 °C in Paris."
    assert got["types"][0] == "response.created" and got["types"][-1] == "response.completed"


def test_vercel_ai_sdk_default_openai_provider(provider):
    base_url, model, upstream = provider
    got = client(base_url, model, "ai-sdk")
    assert got["looped"] == got["streamedLoop"] == "It is 12 °C in Paris."
    assert got["steps"] == 2 and got["calls"] == ["Paris", "Paris"]
    # Whether the provider sent the earlier output back as items or as item_reference items
    # (its default with store: true), the upstream got the signed thinking / signature back.
    turns = [
        json.loads(seen.body)
        for seen in upstream.seen
        if b"tool_result" in seen.body or b"functionResponse" in seen.body
    ]
    assert turns
    for body in turns:
        if "messages" in body:
            assert body["messages"][1]["content"][0]["signature"] == "sig-E2E"
        else:
            assert body["contents"][1]["parts"][0]["thoughtSignature"] == "GSIG-E2E"


@pytest.mark.parametrize("scenario", ["sdk", "ai-sdk"])
def test_js_clients_on_mock_echo(gateway_for, scenario):
    gateway = gateway_for({})
    if scenario == "sdk":
        got = client(gateway.url + "/v1", "mock/echo", "sdk-text")
        assert got["created"] == "Hi there" and got["streamed"] == "Hi again"
    else:
        got = client(gateway.url + "/v1", "mock/echo", "ai-sdk")
        assert got["generated"] == "Hi there" and got["streamed"] == "Hi again"
