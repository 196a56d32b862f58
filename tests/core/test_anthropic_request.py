"""OpenAI Chat Completions request -> Anthropic Messages request."""

import json

import pytest

from edgerelay.core.providers import anthropic
from edgerelay.core.safejson import MAX_DEPTH
from tests.core.gateway_helpers import call, error_of, make_gateway
from tests.support import anthropic_wire as wire
from tests.support.fake_fetch import FakeResponse

ENV = {"ANTHROPIC_API_KEY": "sk-ant-secret", "ANTHROPIC_BASE_URL": "https://anthropic.test"}
USER = {"role": "user", "content": "Hi"}


def answer_json() -> bytes:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    return json.dumps(message).encode()


def send(body: dict, env=None, headers=None):
    """(the upstream request, its JSON body) for ``body`` sent through the gateway."""

    def upstream(request):
        if json.loads(request.body).get("stream"):
            return FakeResponse(200, {}, [wire.text_stream("ok")])
        return FakeResponse(200, {}, [answer_json()])

    gateway, fetch = make_gateway(upstream, {**ENV, **(env or {})})
    body = {"model": "anthropic/claude-sonnet-4-5", "messages": [USER], **body}
    response, _ = call(gateway, body=body, headers=headers)
    assert response.status == 200, response.body
    (request,) = fetch.requests
    return request, json.loads(request.body)


def rejected(body: dict, env=None) -> dict:
    gateway, fetch = make_gateway(
        lambda r: FakeResponse(200, {}, [answer_json()]), {**ENV, **(env or {})}
    )
    body = {"model": "claude-sonnet-4-5", "messages": [USER], **body}
    response, _ = call(gateway, body=body)
    assert response.status == 400, response.body
    assert fetch.requests == []
    return error_of(response)


def test_url_headers_model_and_defaults():
    request, sent = send({}, headers={"authorization": "Bearer client-token"})
    assert request.method == "POST"
    assert request.url == "https://anthropic.test/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-secret"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in {k.lower() for k in request.headers}
    assert b"client-token" not in request.body
    assert sent == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        "max_tokens": 4096,
    }


def test_bare_claude_name_routes_to_anthropic_and_default_max_tokens_is_configurable():
    _, sent = send({"model": "claude-sonnet-4-5"}, env={"EDGERELAY_ANTHROPIC_MAX_TOKENS": "999"})
    assert sent["model"] == "claude-sonnet-4-5" and sent["max_tokens"] == 999


def test_system_and_developer_become_system_blocks_in_order():
    messages = [
        {"role": "system", "content": "Be brief."},
        USER,
        {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
    ]
    _, sent = send({"messages": messages})
    assert sent["system"] == [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Use French."},
    ]
    assert [m["role"] for m in sent["messages"]] == ["user"]
    _, sent = send({"messages": [{"role": "system", "content": "Only one."}, USER]})
    assert sent["system"] == "Only one."


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"max_tokens": 100}, {"max_tokens": 100}),
        ({"max_completion_tokens": 50, "max_tokens": 100}, {"max_tokens": 50}),
        ({"stop": "END"}, {"stop_sequences": ["END"]}),
        ({"stop": ["a", "b"]}, {"stop_sequences": ["a", "b"]}),
        ({"temperature": 0.3, "top_p": 0.9}, {"temperature": 0.3, "top_p": 0.9}),
        ({"temperature": 1.7}, {"temperature": 1.0}),  # OpenAI's range is 0-2, Anthropic's 0-1
        ({"user": "u-42"}, {"metadata": {"user_id": "u-42"}}),
        ({"safety_identifier": "s-1", "user": "u"}, {"metadata": {"user_id": "s-1"}}),
        ({"stream": True}, {"stream": True}),
    ],
)
def test_scalar_parameters(body, expected):
    _, sent = send(body)
    for key, value in expected.items():
        assert sent[key] == value


def test_stream_request_asks_for_an_event_stream():
    request, sent = send({"stream": True, "stream_options": {"include_usage": True}})
    assert sent["stream"] is True and "stream_options" not in sent
    assert request.headers["accept"] == "text/event-stream"


def test_ignored_fields_are_not_forwarded():
    body = {name: 1 for name in anthropic.IGNORED}
    body.update(n=1, logprobs=False, response_format={"type": "text"}, modalities=["text"])
    _, sent = send(body)
    assert set(sent) == {"model", "messages", "max_tokens"}


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": True,
        },
    },
    {"type": "function", "function": {"name": "now"}},
]


def test_tools_and_tool_choice():
    _, sent = send({"tools": TOOLS})
    assert sent["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in sent
    choices = [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "now"}}, {"type": "tool", "name": "now"}),
    ]
    for choice, expected in choices:
        assert send({"tools": TOOLS, "tool_choice": choice})[1]["tool_choice"] == expected
    _, sent = send({"tools": TOOLS, "parallel_tool_calls": False})
    assert sent["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    _, sent = send({"tools": TOOLS, "tool_choice": "required", "parallel_tool_calls": False})
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_tool_conversation_tool_use_and_merged_tool_results():
    messages = [
        USER,
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": ""}},
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18°C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "noon"}]},
        {"role": "user", "content": "And tomorrow?"},
    ]
    _, sent = send({"messages": messages, "tools": TOOLS})
    assert sent["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "noon"}],
                },
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
    ]


def test_an_assistant_message_with_nothing_in_it_is_left_out():
    # Anthropic refuses a turn without content anywhere but last; OpenAI clients replay such
    # messages (an empty answer, content null without tool calls). Gemini leaves them out too.
    messages = [
        USER,
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "Hello?"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "assistant", "content": [{"type": "text", "text": ""}]},
    ]
    _, sent = send({"messages": messages})
    assert sent["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "Hello?"}],
        }
    ]


def test_images_data_urls_and_http_urls():
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {
            "type": "image_url",
            "image_url": {"url": "https://example.test/cat.jpg", "detail": "high"},
        },
    ]
    _, sent = send({"messages": [{"role": "user", "content": content}]})
    assert sent["messages"][0]["content"][1:] == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    ("effort", "budget"),
    [("minimal", 1024), ("low", 2048), ("medium", 8192), ("high", 24576), ("xhigh", 32768)],
)
def test_reasoning_effort_maps_to_a_thinking_budget_with_room_for_the_answer(effort, budget):
    _, sent = send({"reasoning_effort": effort})
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert sent["max_tokens"] == budget + 4096
    _, sent = send({"reasoning_effort": effort, "max_completion_tokens": budget + 1})
    assert sent["max_tokens"] == budget + 1
    assert "thinking" not in send({"reasoning_effort": "none"})[1]


def test_thinking_is_kept_across_a_tool_turn_first_and_in_order():
    details = [
        {
            "type": "reasoning.text",
            "text": "Need the weather.",
            "signature": "sig-1",
            "format": "anthropic-claude-v1",
            "index": 0,
        },
        {
            "type": "reasoning.encrypted",
            "data": "REDACTED",
            "format": "anthropic-claude-v1",
            "index": 1,
        },
        {
            "type": "reasoning.encrypted",
            "data": "gemini-sig",
            "id": "toolu_1",
            "format": "google-gemini-v1",
        },
        {"type": "reasoning.text", "text": "unsigned", "format": "anthropic-claude-v1", "index": 2},
    ]
    assistant = {
        "role": "assistant",
        "content": None,
        "reasoning_content": "Need the weather.",
        "reasoning_details": details,
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "now", "arguments": "{}"}}
        ],
    }
    tool = {"role": "tool", "tool_call_id": "toolu_1", "content": "noon"}
    _, sent = send({"messages": [USER, assistant, tool], "reasoning_effort": "low", "tools": TOOLS})
    assert sent["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Need the weather.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "REDACTED"},
        {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {}},
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "json_schema": {}}}, "response_format"),
        ({"audio": {"voice": "alloy"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"web_search_options": {}}, "web_search_options"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": "many"}, "max_completion_tokens"),
        ({"stop": [1]}, "stop"),
        ({"temperature": "hot"}, "temperature"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"reasoning_effort": "high", "max_tokens": 24576}, "max_tokens"),
        ({"reasoning_effort": "low", "temperature": 0.2}, "temperature"),
        ({"reasoning_effort": "low", "top_p": 0.5}, "top_p"),
        ({"reasoning_effort": "low", "tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
        ({"messages": [{"role": "system", "content": "only system"}]}, "messages"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": [
                    USER,
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "t",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{oops"},
                            }
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        # Wrong types anywhere: a 400 naming the field, never a 500 or Anthropic's own 400.
        ({"messages": [USER, {"role": "assistant", "tool_calls": 5}]}, "messages[1].tool_calls"),
        (
            {"messages": [USER, {"role": "assistant", "tool_calls": {"id": "t"}}]},
            "messages[1].tool_calls",
        ),
        (
            {
                "messages": [
                    USER,
                    {"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]},
                ]
            },
            "messages[1].tool_calls[0].id",
        ),
        (
            {
                "messages": [
                    USER,
                    {"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": 3}}]},
                ]
            },
            "messages[1].tool_calls[0].function.name",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
            "messages[0].content[0].text",
        ),
        (
            {"messages": [{"role": "system", "content": [{"type": "text", "text": ["x"]}]}, USER]},
            "messages[0].content[0].text",
        ),
        (
            {
                "messages": [
                    USER,
                    {"role": "assistant", "content": [{"type": "refusal", "refusal": {}}]},
                ]
            },
            "messages[1].content[0].refusal",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
            "tools[0].function.parameters",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "description": ["d"]}}]},
            "tools[0].function.description",
        ),
    ],
)
def test_fields_that_cannot_be_honoured_are_400_naming_the_field(body, param):
    error = rejected(body)
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert param.split(".")[0].split("[")[0] in error["message"]


def test_thinking_budget_error_says_what_to_do():
    message = rejected({"reasoning_effort": "high", "max_completion_tokens": 1000})["message"]
    assert "24576" in message and "max_completion_tokens" in message


def test_tool_call_arguments_sent_as_an_object_are_taken_as_they_are():
    call_ = {
        "id": "toolu_1",
        "type": "function",
        "function": {"name": "now", "arguments": {"tz": "UTC"}},
    }
    messages = [USER, {"role": "assistant", "tool_calls": [call_]}]
    _, sent = send({"messages": messages})
    assert sent["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "now", "input": {"tz": "UTC"}}
    ]
    error = rejected({"tools": TOOLS, "tool_choice": {"type": "function", "function": "now"}})
    assert error["param"] == "tool_choice"


def test_tool_call_arguments_nested_deeper_than_the_limit_are_400_before_they_are_parsed():
    deep = '{"a": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}"
    call_ = {"id": "toolu_1", "type": "function", "function": {"name": "now", "arguments": deep}}
    error = rejected({"messages": [USER, {"role": "assistant", "tool_calls": [call_]}]})
    assert error["param"] == "messages[1].tool_calls[0].function.arguments"
