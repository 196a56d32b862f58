"""Chat messages checked once (core/chat_messages.py) into the typed form both translators read:
the same 400 for the same fault whichever provider is asked, and one check per request even when
a fallback chain translates it for several providers."""

import json

import pytest

from edgerelay.core import GatewayError, chat, load_config
from edgerelay.core.chat import parse_chat_request
from edgerelay.core.chat_messages import Message, Part, ToolCall
from edgerelay.core.providers import anthropic, gemini
from edgerelay.core.providers.base import ChatContext
from edgerelay.core.routing import route_model
from tests.core.gateway_helpers import call, make_gateway
from tests.support.fake_fetch import FakeResponse

ENV = {"ANTHROPIC_API_KEY": "a-x", "GEMINI_API_KEY": "g-x"}
USER = {"role": "user", "content": "Hi"}
CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}


def parsed(messages):
    return parse_chat_request(json.dumps({"model": "m", "messages": messages}).encode())


def test_messages_are_typed_with_parts_data_urls_and_parsed_arguments():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}
    audio = {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}}
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "look"}, image, audio]},
        {
            "role": "assistant",
            "content": [{"type": "refusal", "refusal": "no"}],
            "tool_calls": [CALL],
            "reasoning_details": [{"type": "reasoning.text"}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        {"role": "user", "content": [{"type": "video"}]},
    ]
    assert parsed(messages).messages() == (
        Message(0, "system", "Be brief."),
        Message(
            1,
            "user",
            (
                Part("text", "look"),
                Part("image_url", media_type="image/png", data="iVBO"),
                Part("input_audio", media_type="audio/wav", data="UklG"),
            ),
        ),
        Message(
            2,
            "assistant",
            (Part("refusal", "no"),),
            (ToolCall("c1", "f", {"a": 1}),),
            reasoning_details=[{"type": "reasoning.text"}],
        ),
        Message(3, "tool", "done", tool_call_id="c1"),
        Message(4, "user", (Part("video"),)),  # for the provider to refuse
    )


def test_a_copy_with_the_same_messages_reuses_them_and_new_messages_are_checked_anew():
    request = parsed([USER])
    first = request.messages()
    assert request.messages() is first
    copy = request._replace(body={**request.body, "stream": True})
    assert copy.messages() is first
    changed = request._replace(body={**request.body, "messages": [{"role": "user", "content": 5}]})
    with pytest.raises(GatewayError) as raised:
        changed.messages()
    assert raised.value.param == "messages[0].content"
    assert request.messages() is first


def _error(provider, model, messages):
    body = json.dumps({"model": model, "messages": messages}).encode()
    request = parse_chat_request(body)
    config = load_config(ENV)
    ctx = ChatContext("chatcmpl-1", 1, lambda: "x", False)
    with pytest.raises(GatewayError) as raised:
        provider.build_request(request, route_model(request.model, config), config, ctx)
    return raised.value.status, raised.value.param, raised.value.message


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "user", "content": 5}], "messages[0].content"),
        (
            [{"role": "user", "content": [{"type": "text", "text": 5}]}],
            "messages[0].content[0].text",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 1}}]}],
            "messages[0].content[0].image_url.url",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": "data:x,1"}]}],
            "messages[0].content[0].image_url.url",
        ),
        (
            [{"role": "user", "content": [{"type": "file", "file": {"file_data": "data:,x"}}]}],
            "messages[0].content[0].file.file_data",
        ),
        ([{"role": "system", "content": [{"type": "image_url"}]}, USER], "messages[0].content[0]"),
        ([USER, {"role": "assistant", "tool_calls": 5}], "messages[1].tool_calls"),
        ([USER, {"role": "assistant", "tool_calls": ["x"]}], "messages[1].tool_calls[0]"),
        (
            [USER, {"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": 3}}]}],
            "messages[1].tool_calls[0].function.name",
        ),
        (
            [
                USER,
                {
                    "role": "assistant",
                    "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "[1]"}}],
                },
            ],
            "messages[1].tool_calls[0].function.arguments",
        ),
        ([USER, {"role": "tool", "content": "x"}], "messages[1].tool_call_id"),
    ],
)
def test_the_same_fault_is_the_same_400_for_anthropic_and_gemini(messages, param):
    from_anthropic = _error(anthropic, "anthropic/claude-sonnet-4-5", messages)
    from_gemini = _error(gemini, "gemini/gemini-2.5-flash", messages)
    assert from_anthropic == from_gemini
    assert from_anthropic[:2] == (400, param)


def test_a_fallback_chain_checks_the_messages_once(monkeypatch):
    calls = []

    def counting(messages):
        calls.append(len(messages))
        return normalise(messages)

    normalise = chat.normalise
    monkeypatch.setattr(chat, "normalise", counting)
    chain = '[aliases.smart]\ntargets = ["anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash"]'
    busy = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "x"}})
    gemini_answer = {
        "candidates": [{"content": {"parts": [{"text": "from gemini"}]}, "finishReason": "STOP"}]
    }

    def upstream(request):
        if request.url.endswith("/v1/messages"):  # Anthropic: busy, however often asked
            return FakeResponse(503, {"content-type": "application/json"}, [busy.encode()])
        return FakeResponse(200, {}, [json.dumps(gemini_answer).encode()])

    gateway, fetch = make_gateway(upstream, {**ENV, "EDGERELAY_CONFIG": chain})
    body = {"model": "smart", "messages": [USER, {"role": "assistant", "tool_calls": [CALL]}]}
    response, _ = call(gateway, body=body)
    assert response.status == 200, response.body
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "from gemini"
    urls = [r.url.rsplit("/", 1)[-1] for r in fetch.requests]
    assert urls[0] == "messages" and urls[-1] == "gemini-2.5-flash:generateContent"
    assert calls == [2]  # one check for every attempt at both providers
