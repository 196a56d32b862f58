"""Adding a provider: a test-only kind registered, configured and served by the real Gateway."""

import json

import pytest

from edgerelay.core import registry
from tests.core import toy_provider
from tests.core.gateway_helpers import call, error_of, make_gateway
from tests.support.fake_fetch import FakeResponse

TOML = """
[providers.toybox]
kind = "toy"
base_url = "https://toy.test/api/"
api_key_env = "TOY_KEY"
"""
ENV = {"EDGERELAY_CONFIG": TOML, "TOY_KEY": "toy-secret"}


@pytest.fixture(autouse=True)
def toy_kind():
    registry.register(toy_provider.SPEC)
    yield
    registry.unregister("toy")


def toy_upstream(request):
    sent = json.loads(request.body)
    headers = {"x-toy-trace": "t-1", "set-cookie": "a=b"}
    if sent["stream"]:
        return FakeResponse(200, headers, [b"hel", b"lo\nwor", b"ld\nEND\n"])
    return FakeResponse(200, headers, [json.dumps({"text": sent["prompt"].upper()}).encode()])


def test_a_registered_kind_is_routed_translated_and_keyed_through_the_gateway():
    gateway, fetch = make_gateway(toy_upstream, ENV)
    body = {"model": "toybox/small", "messages": [{"role": "user", "content": "hi there"}]}
    response, _ = call(gateway, body=body)
    assert response.status == 200
    answer = json.loads(response.body)
    assert answer["object"] == "chat.completion"
    assert answer["model"] == "small"
    assert answer["choices"][0]["message"]["content"] == "HI THERE"
    assert ("x-toy-trace", "t-1") in response.headers  # the kind's own response header
    assert all(name != "set-cookie" for name, _ in response.headers)
    (sent,) = fetch.requests
    assert sent.url == "https://toy.test/api/generate"
    assert sent.headers["x-toy-key"] == "toy-secret"
    assert json.loads(sent.body) == {"model": "small", "prompt": "hi there", "stream": False}


def test_a_registered_kind_streams_through_its_translator():
    gateway, _ = make_gateway(toy_upstream, ENV)
    body = {
        "model": "toybox/small",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    _, chunks = call(gateway, body=body)
    frames = [f[6:] for f in b"".join(chunks).decode().split("\n\n") if f]
    assert frames[-1] == "[DONE]"
    deltas = [json.loads(f)["choices"][0]["delta"] for f in frames[:-1]]
    assert [d.get("content") for d in deltas[1:-1]] == ["hello", "world"]


def test_a_registered_kind_errors_and_its_passthrough_route_follow_its_declaration():
    gateway, fetch = make_gateway(lambda request: FakeResponse(429, {}, [b"slow down"]), ENV)
    body = {"model": "toybox/small", "messages": [{"role": "user", "content": "hi"}]}
    response, _ = call(gateway, body=body)
    assert response.status == 429
    assert error_of(response)["message"] == "toy says: slow down"
    # Its passthrough route allows what the entry lists, and errors in the declared shape.
    response, _ = call(gateway, path="/toybox/other", body=body)
    assert response.status == 404
    assert json.loads(response.body)["type"] == "error"  # error_shape="anthropic"
    gateway, fetch = make_gateway(toy_upstream, ENV)
    response, _ = call(gateway, path="/toybox/generate", body={"prompt": "x", "stream": False})
    assert response.status == 200
    assert fetch.requests[-1].headers["x-toy-key"] == "toy-secret"


def test_without_the_entry_the_kind_is_a_configuration_error():
    registry.unregister("toy")
    from edgerelay.core.config import ConfigError, load_config

    with pytest.raises(ConfigError) as raised:
        load_config(ENV)
    assert raised.value.setting == "EDGERELAY_CONFIG.providers.toybox.kind"


def _contract_members():
    from edgerelay.core.providers.base import Provider

    functions = {
        name for name, value in vars(Provider).items() if callable(value) and name[0] != "_"
    }
    return functions, set(Provider.__annotations__)


@pytest.mark.parametrize("kind", [spec.kind for spec in registry.specs()] + ["toy"])
def test_every_registered_module_implements_the_whole_contract(kind):
    module = registry.provider(kind)
    functions, flags = _contract_members()
    assert functions == {
        "build_request",
        "translate_response",
        "stream_translator",
        "translate_error",
    }
    assert flags == {"relays_openai", "local_upstream"}
    for name in functions:
        assert callable(getattr(module, name, None)), f"{kind} lacks {name}"
    assert isinstance(module.relays_openai, bool)
    assert module.local_upstream is None or callable(module.local_upstream)
