"""OpenAI Chat Completions requests as Gemini ``generateContent`` requests."""

import json

import pytest

from edgerelay.core import GatewayError, load_config
from edgerelay.core.chat import parse_chat_request
from edgerelay.core.providers import gemini
from edgerelay.core.providers.base import ChatContext
from edgerelay.core.routing import route_model
from edgerelay.core.safejson import MAX_DEPTH
from tests.core.gateway_helpers import call, error_of, make_gateway
from tests.support.fake_fetch import FakeResponse

ENV = {"GEMINI_API_KEY": "gk-secret", "GEMINI_BASE_URL": "https://gemini.test"}
CTX = ChatContext("chatcmpl-1", 1_760_000_000, lambda: "x", False)
SIG = "c2lnbmF0dXJl"


def build(body, env=ENV):
    body = {"model": "gemini-2.5-flash", **body}
    chat = parse_chat_request(json.dumps(body).encode())
    config = load_config(env)
    return gemini.build_request(chat, route_model(chat.model, config), config, CTX)


def sent(body, env=ENV):
    return json.loads(build(body, env).body)


def user(text):
    return {"role": "user", "content": text}


def test_url_headers_and_key_never_in_the_url():
    request = build({"messages": [user("hi")]})
    assert request.method == "POST"
    assert request.url == "https://gemini.test/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == "gk-secret"
    assert "authorization" not in request.headers
    assert "key=" not in request.url and "gk-secret" not in request.url
    streamed = build({"model": "gemini/gemini-2.5-pro", "stream": True, "messages": [user("x")]})
    assert streamed.url == (
        "https://gemini.test/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    )
    assert streamed.headers["accept"] == "text/event-stream"
    assert json.loads(request.body) == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


@pytest.mark.parametrize("model", ["gemini/../x", "gemini/a?key=1", "gemini/a b", "gemini/a:b"])
def test_model_names_that_would_change_the_url_are_400(model):
    with pytest.raises(GatewayError) as raised:
        build({"model": model, "messages": [user("x")]})
    assert (raised.value.status, raised.value.param) == (400, "model")


def test_system_generation_config_and_response_format():
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Be kind."}]},
            user("hi"),
        ],
        "max_completion_tokens": 100,
        "max_tokens": 5,  # max_completion_tokens wins, as at OpenAI
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "seed": 7,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {}}},
        "user": "u-1",
        "parallel_tool_calls": True,
        "n": 1,
        "logprobs": False,
    }
    assert sent(body) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Be kind."}]},
        "generationConfig": {
            "maxOutputTokens": 100,
            "temperature": 0.2,
            "topP": 0.9,
            "presencePenalty": 0.5,
            "frequencyPenalty": 0.25,
            "seed": 7,
            "stopSequences": ["END"],
            "responseMimeType": "application/json",
            "responseJsonSchema": {},
        },
    }
    config = sent(
        {
            "messages": [user("x")],
            "max_tokens": 5,
            "stop": ["a", "b"],
            "presence_penalty": 0,
            "frequency_penalty": 0.0,
        }
    )
    assert config["generationConfig"] == {"maxOutputTokens": 5, "stopSequences": ["a", "b"]}
    json_mode = sent({"messages": [user("x")], "response_format": {"type": "json_object"}})
    assert json_mode["generationConfig"] == {"responseMimeType": "application/json"}
    assert "generationConfig" not in sent({"messages": [user("x")], "stop": None})


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("gemini-2.5-pro", "medium", {"thinkingBudget": 8192, "includeThoughts": True}),
        ("gemini-2.5-flash", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini-3-pro-preview", "low", {"thinkingLevel": "LOW", "includeThoughts": True}),
        ("gemini-3-flash", "minimal", {"thinkingLevel": "MINIMAL", "includeThoughts": True}),
        ("gemini/gemini-3-flash", "none", {"thinkingLevel": "MINIMAL"}),
        ("gemini-3-pro-preview", "high", {"thinkingLevel": "HIGH", "includeThoughts": True}),
    ],
)
def test_reasoning_effort_maps_to_thinking_config(model, effort, thinking):
    body = sent({"model": model, "messages": [user("x")], "reasoning_effort": effort})
    assert body["generationConfig"] == {"thinkingConfig": thinking}


def test_tools_tool_choice_and_a_tool_conversation_with_several_results_in_one_turn():
    params = {"type": "object", "properties": {"city": {"type": "string"}}}
    body = {
        "messages": [
            user("Weather in Paris and Rome?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "time", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
            {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21}'},
            user("Thanks. And tomorrow?"),
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "weather", "description": "Weather", "parameters": params},
            },
            {"type": "function", "function": {"name": "time", "strict": True}},
        ],
        "tool_choice": "required",
    }
    assert sent(body) == {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
                    {"functionCall": {"name": "time", "args": {}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "time", "response": {"output": "12:00"}}},
                    {"functionResponse": {"name": "weather", "response": {"temp": 21}}},
                    {"text": "Thanks. And tomorrow?"},
                ],
            },
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {"name": "weather", "description": "Weather", "parametersJsonSchema": params},
                    {"name": "time"},
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    }


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "f"}},
            {"mode": "ANY", "allowedFunctionNames": ["f"]},
        ),
    ],
)
def test_tool_choice(choice, config):
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = sent({"messages": [user("x")], "tools": tools, "tool_choice": choice})
    assert body["toolConfig"] == {"functionCallingConfig": config}
    assert "toolConfig" not in sent({"messages": [user("x")], "tool_choice": choice})


def test_thought_signatures_go_back_on_the_function_call_parts():
    details = [
        {"type": "reasoning.encrypted", "data": SIG, "id": "call_a", "format": "google-gemini-v1"},
        {"type": "reasoning.encrypted", "data": "t2", "id": None, "format": "google-gemini-v1"},
        # another provider's entries never reach Gemini
        {
            "type": "reasoning.encrypted",
            "data": "x",
            "id": "call_b",
            "format": "anthropic-claude-v1",
        },
        {
            "type": "reasoning.text",
            "text": "hmm",
            "signature": "s",
            "format": "anthropic-claude-v1",
        },
    ]
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    assistant = {
        "role": "assistant",
        "content": "Let me look.",
        "reasoning_content": "thinking text is not sent back",
        "tool_calls": calls,
        "reasoning_details": details,
    }
    messages = [
        user("q"),
        assistant,
        {"role": "tool", "tool_call_id": "call_a", "content": "1"},
        {"role": "tool", "tool_call_id": "call_b", "content": "2"},
    ]
    model_turn = sent({"messages": messages})["contents"][1]
    assert model_turn == {
        "role": "model",
        "parts": [
            {"text": "Let me look.", "thoughtSignature": "t2"},
            {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": SIG},
            {"functionCall": {"name": "g", "args": {}}},
        ],
    }


def test_images_audio_and_files_become_inline_data():
    content = [
        {"type": "text", "text": "What is this?"},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
        },
        {"type": "image_url", "image_url": {"url": "https://example.test/cat.JPG?x=1"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
        },
    ]
    parts = sent({"messages": [{"role": "user", "content": content}]})["contents"][0]["parts"]
    assert parts == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.test/cat.JPG?x=1"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


def test_legacy_function_messages_are_translated():
    messages = [
        user("q"),
        {"role": "assistant", "content": None, "function_call": {"name": "f", "arguments": "{}"}},
        {"role": "function", "name": "f", "content": "done"},
    ]
    contents = sent({"messages": messages})["contents"]
    assert contents[1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
        {
            "role": "user",
            "parts": [{"functionResponse": {"name": "f", "response": {"output": "done"}}}],
        },
    ]


CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


def only(message):
    return {"messages": [message]}


def call_with(arguments):
    calls = [{**CALL, "function": {"name": "f", "arguments": arguments}}]
    return only({"role": "assistant", "tool_calls": calls})


def user_part(part):
    return only({"role": "user", "content": [part]})


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logit_bias": {"1": 2}}, "logit_bias"),
        ({"audio": {"voice": "x"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"reasoning_effort": "max-ish"}, "reasoning_effort"),
        ({"response_format": {"type": "yaml"}}, "response_format"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
        ({"tools": ["x"]}, "tools[0]"),
        ({"stop": [1]}, "stop"),
        # Checked once for every provider (core/chat.py): Gemini gets the same 400s.
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": "100"}, "max_completion_tokens"),
        ({"temperature": -1}, "temperature"),
        (only({"role": "tool", "tool_call_id": "no", "content": "x"}), "messages[0].tool_call_id"),
        (user_part({"type": "video"}), "messages[0].content[0]"),
        (
            user_part({"type": "image_url", "image_url": {"url": "data:x,1"}}),
            "messages[0].content[0].image_url.url",
        ),
        (only({"role": "user"}), "messages[0].content"),
        (call_with("[1]"), "messages[0].tool_calls[0].function.arguments"),
        (call_with("{oops"), "messages[0].tool_calls[0].function.arguments"),
        (only({"role": "assistant", "tool_calls": {"x": 1}}), "messages[0].tool_calls"),
        (only({"role": "system", "content": [{"type": "image_url"}]}), "messages[0].content[0]"),
        # Wrong types anywhere: a 400 naming the field, never a 500.
        ({"reasoning_effort": []}, "reasoning_effort"),
        ({"reasoning_effort": {"level": "high"}}, "reasoning_effort"),
        ({"tool_choice": {"type": "function", "function": "f"}}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": ["f"]}}, "tool_choice"),
        ({"response_format": "json_schema"}, "response_format"),
        ({"response_format": {"type": ["json_object"]}}, "response_format"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
            "tools[0].function.parameters",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "description": 7}}]},
            "tools[0].function.description",
        ),
        (user_part({"type": "input_audio", "input_audio": "UklGRg=="}), "messages[0].content[0]"),
        (
            user_part({"type": "input_audio", "input_audio": {"data": "x", "format": ["wav"]}}),
            "messages[0].content[0]",
        ),
        (user_part({"type": "file", "file": "data:,x"}), "messages[0].content[0]"),
        (
            user_part({"type": "image_url", "image_url": ["https://x/y.png"]}),
            "messages[0].content[0].image_url.url",
        ),
        (user_part({"type": "text", "text": 5}), "messages[0].content[0].text"),
        (
            only({"role": "assistant", "content": [{"type": "text", "text": ["a"]}]}),
            "messages[0].content[0].text",
        ),
        (
            only({"role": "system", "content": [{"type": "refusal", "refusal": {}}]}),
            "messages[0].content[0].refusal",
        ),
        (
            only({"role": "function", "name": "f", "content": [{"type": "text", "text": 1}]}),
            "messages[0].content[0].text",
        ),
        (
            only({"role": "assistant", "tool_calls": [CALL], "function_call": "f"}),
            "messages[0].function_call",
        ),
    ],
)
def test_what_cannot_be_translated_is_a_400_naming_the_field(extra, param):
    body = {"messages": [user("x")], **extra}
    with pytest.raises(GatewayError) as raised:
        build(body)
    assert raised.value.status == 400
    assert raised.value.param == param


def test_signature_items_with_odd_ids_are_left_out():
    details = [
        {"type": "reasoning.encrypted", "format": "google-gemini-v1", "data": "s1", "id": ["c1"]},
        {"type": "reasoning.encrypted", "format": "google-gemini-v1", "data": "s2", "id": {}},
        {"type": "reasoning.encrypted", "format": "google-gemini-v1", "data": SIG, "id": "c1"},
    ]
    message = {
        "role": "assistant",
        "content": "x",
        "tool_calls": [CALL],
        "reasoning_details": details,
    }
    parts = sent({"messages": [user("q"), message]})["contents"][1]["parts"]
    assert parts == [
        {"text": "x"},
        {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": SIG},
    ]


def test_the_tool_name_is_found_only_in_an_earlier_assistant_turn():
    messages = [
        user("q"),
        {"role": "tool", "tool_call_id": "c1", "content": "early"},
        {"role": "assistant", "tool_calls": [CALL]},
    ]
    with pytest.raises(GatewayError) as raised:
        build({"messages": messages})
    assert raised.value.param == "messages[1].tool_call_id"
    assert "'c1'" in raised.value.message


def test_through_the_gateway_the_client_authorization_never_reaches_gemini():
    answer = {"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}]}
    reply = json.dumps(answer).encode()
    gateway, fetch = make_gateway(lambda request: FakeResponse(200, {}, [reply]), ENV)
    body = {"model": "gemini/gemini-2.5-flash", "messages": [user("hi")]}
    response, _ = call(gateway, body=body, headers={"authorization": "Bearer client-key"})
    assert response.status == 200
    (request,) = fetch.requests
    assert "client-key" not in json.dumps(dict(request.headers)) + request.url
    assert request.headers["x-goog-api-key"] == "gk-secret"
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "ok"


def test_a_bad_request_is_answered_before_anything_is_sent():
    gateway, fetch = make_gateway(env=ENV)
    body = {"model": "gemini-2.5-flash", "messages": [user("x")], "n": 3}
    response, _ = call(gateway, body=body)
    assert response.status == 400
    assert error_of(response)["param"] == "n"
    assert fetch.requests == []


def test_consecutive_messages_of_one_role_form_one_turn():
    messages = [
        user("a"),
        user("b"),
        {"role": "assistant", "content": "c"},
        {"role": "assistant", "content": ""},  # no parts: left out
        {"role": "assistant", "content": [{"type": "text", "text": "d"}]},
    ]
    assert sent({"messages": messages})["contents"] == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]},
    ]


def test_json_in_strings_nested_deeper_than_the_limit_is_never_parsed():
    deep = '{"a": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}"
    with pytest.raises(GatewayError) as raised:
        build(call_with(deep))
    assert raised.value.param == "messages[0].tool_calls[0].function.arguments"
    messages = [
        user("q"),
        {"role": "assistant", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": deep},
    ]
    response = sent({"messages": messages})["contents"][2]["parts"][0]["functionResponse"]
    assert response == {"name": "f", "response": {"output": deep}}
