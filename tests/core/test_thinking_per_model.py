"""reasoning_effort per model (the registry's per-model facts), tool turns repaired when a client
drops the signed thinking, and signatures kept to the model that made them."""

import json

import pytest

from edgerelay.core import ConfigError, load_config
from tests.core.gateway_helpers import call, error_of, make_gateway
from tests.support import anthropic_wire as wire
from tests.support.fake_fetch import FakeResponse

ANTHROPIC = {"ANTHROPIC_API_KEY": "sk-ant", "ANTHROPIC_BASE_URL": "https://anthropic.test"}
GEMINI = {"GEMINI_API_KEY": "gk", "GEMINI_BASE_URL": "https://gemini.test"}
USER = {"role": "user", "content": "Weather in Paris?"}
TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def anthropic_answer(request):
    if json.loads(request.body).get("stream"):
        return FakeResponse(200, {}, [wire.text_stream("ok")])
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    return FakeResponse(200, {}, [json.dumps(message).encode()])


def gemini_answer(request):
    answer = {"candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}]}
    return FakeResponse(200, {}, [json.dumps(answer).encode()])


def claude(model, body, env=None):
    """(the response, the JSON body Anthropic was sent or None)."""
    gateway, fetch = make_gateway(anthropic_answer, {**ANTHROPIC, **(env or {})})
    response, _ = call(gateway, body={"model": model, "messages": [USER], **body})
    sent = json.loads(fetch.requests[0].body) if fetch.requests else None
    return response, sent


def gemini(model, body, env=None):
    gateway, fetch = make_gateway(gemini_answer, {**GEMINI, **(env or {})})
    response, _ = call(gateway, body={"model": model, "messages": [USER], **body})
    sent = json.loads(fetch.requests[0].body) if fetch.requests else None
    return response, sent


def repaired(response):
    return dict(response.headers).get("x-edgerelay-repaired")


# --- reasoning_effort per table row -------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "effort", "thinking", "output_config"),
    [
        # adaptive only (Opus 4.7): levels up to max; no way to switch thinking off
        ("claude-opus-4-7", "minimal", {"type": "adaptive"}, {"effort": "low"}),
        ("claude-opus-4-7", "medium", {"type": "adaptive"}, {"effort": "medium"}),
        ("claude-opus-4-7", "xhigh", {"type": "adaptive"}, {"effort": "max"}),
        ("claude-opus-4-7", "none", {"type": "adaptive"}, {"effort": "low"}),
        # both (Opus 4.6, Sonnet 4.6): adaptive sent, thinking off accepted
        ("claude-sonnet-4-6", "high", {"type": "adaptive"}, {"effort": "high"}),
        ("claude-opus-4-6", "xhigh", {"type": "adaptive"}, {"effort": "max"}),
        ("claude-opus-4-6", "none", None, None),
        # budget only (4.5 and older)
        ("claude-sonnet-4-5", "high", {"type": "enabled", "budget_tokens": 24576}, None),
        ("claude-opus-4-5-20251101", "low", {"type": "enabled", "budget_tokens": 2048}, None),
        ("claude-3-7-sonnet-latest", "minimal", {"type": "enabled", "budget_tokens": 1024}, None),
        ("claude-sonnet-4-5", "none", None, None),
        # a name no pattern knows: the newest family (adaptive, cannot switch off)
        ("claude-fable-9", "low", {"type": "adaptive"}, {"effort": "low"}),
        ("anthropic/claude-next", "none", {"type": "adaptive"}, {"effort": "low"}),
    ],
)
def test_reasoning_effort_per_claude_model(model, effort, thinking, output_config):
    response, sent = claude(model, {"reasoning_effort": effort})
    assert response.status == 200, response.body
    assert sent.get("thinking") == thinking
    assert sent.get("output_config") == output_config
    if thinking and thinking["type"] == "adaptive":
        assert sent["max_tokens"] == 4096  # no budget to make room for
    assert repaired(response) is None


def test_max_tokens_stays_above_a_budget_but_adaptive_models_have_none():
    response, _ = claude("claude-sonnet-4-5", {"reasoning_effort": "high", "max_tokens": 1000})
    assert response.status == 400
    assert error_of(response)["param"] == "max_tokens"
    response, sent = claude("claude-opus-4-7", {"reasoning_effort": "high", "max_tokens": 1000})
    assert response.status == 200
    assert sent["max_tokens"] == 1000


def test_a_config_override_decides_for_a_model_that_arrives_after_a_release():
    toml = """
[models.anthropic."claude-sonnet-4-5*"]
thinking = "adaptive"
efforts = ["low", "medium", "high"]
"""
    _, sent = claude("claude-sonnet-4-5", {"reasoning_effort": "xhigh"}, {"EDGERELAY_CONFIG": toml})
    assert (sent["thinking"], sent["output_config"]) == ({"type": "adaptive"}, {"effort": "high"})
    toml = """
[models.anthropic."claude-fable-9*"]
thinking = "budget"
"""
    _, sent = claude("claude-fable-9", {"reasoning_effort": "low"}, {"EDGERELAY_CONFIG": toml})
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}


@pytest.mark.parametrize(
    ("row", "setting"),
    [
        ('thinking = "sometimes"', "EDGERELAY_CONFIG.models.anthropic.claude-x*.thinking"),
        ('thinking = "adaptive"', "EDGERELAY_CONFIG.models.anthropic.claude-x*.efforts"),
        (
            'thinking = "budget"\ncan_disable = "no"',
            "EDGERELAY_CONFIG.models.anthropic.claude-x*.can_disable",
        ),
        ('thinking = "budget"\nbudget = 5', "EDGERELAY_CONFIG.models.anthropic.claude-x*"),
    ],
)
def test_a_bad_model_row_in_the_config_is_named(row, setting):
    toml = f'[models.anthropic."claude-x*"]\n{row}\n'
    with pytest.raises(ConfigError) as raised:
        load_config({"EDGERELAY_CONFIG": toml})
    assert raised.value.setting == setting


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        ("gemini-3-pro-preview", "minimal", {"thinkingLevel": "LOW", "includeThoughts": True}),
        ("gemini-3-pro-preview", "medium", {"thinkingLevel": "HIGH", "includeThoughts": True}),
        ("gemini-3-pro-preview", "none", {"thinkingLevel": "LOW"}),
        ("gemini-3-flash-preview", "medium", {"thinkingLevel": "MEDIUM", "includeThoughts": True}),
        ("gemini-3-flash-preview", "xhigh", {"thinkingLevel": "HIGH", "includeThoughts": True}),
        ("gemini-2.5-pro", "none", {"thinkingBudget": 128}),
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini-2.5-flash-lite", "high", {"thinkingBudget": 24576, "includeThoughts": True}),
        # unknown names: the newest family (levels)
        ("gemini-flash-latest", "low", {"thinkingLevel": "LOW", "includeThoughts": True}),
    ],
)
def test_reasoning_effort_per_gemini_model(model, effort, thinking):
    _, sent = gemini(model, {"reasoning_effort": effort})
    assert sent["generationConfig"]["thinkingConfig"] == thinking


def test_a_gemini_config_override():
    toml = """
[models.gemini."gemini-2.5-flash*"]
thinking = "level"
efforts = ["LOW", "HIGH"]
signatures = true
"""
    _, sent = gemini("gemini-2.5-flash", {"reasoning_effort": "medium"}, {"EDGERELAY_CONFIG": toml})
    assert sent["generationConfig"]["thinkingConfig"]["thinkingLevel"] == "HIGH"


# --- Anthropic: a tool turn sent back without its signed thinking ------------------------------

# The assistant message as clients send it back: the openai SDK's runTools (content null), the
# Vercel AI SDK and LangChain (content "" or text parts), all without reasoning_details.
CLIENT_FORMS = [
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {
        "role": "assistant",
        "content": [{"type": "text", "text": "Let me check."}],
        "tool_calls": [{**CALL, "function": {"name": "weather", "arguments": ""}}],
    },
]


@pytest.mark.parametrize("assistant", CLIENT_FORMS)
@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-sonnet-4-5"])
def test_a_model_that_can_think_less_gets_the_turn_with_thinking_off(assistant, model):
    body = {"messages": [USER, assistant, RESULT], "tools": TOOLS, "reasoning_effort": "high"}
    response, sent = claude(model, body)
    assert response.status == 200, response.body
    assert "thinking" not in sent and "output_config" not in sent
    assert sent["messages"][1]["content"][-1]["type"] == "tool_use"
    assert repaired(response) == "thinking"


def test_the_repair_header_comes_on_streams_too_and_cors_exposes_it():
    gateway, _ = make_gateway(anthropic_answer, ANTHROPIC)
    body = {
        "model": "claude-sonnet-4-6",
        "stream": True,
        "messages": [USER, CLIENT_FORMS[0], RESULT],
        "tools": TOOLS,
        "reasoning_effort": "low",
    }
    response, _ = call(gateway, body=body, headers={"origin": "https://app.test"})
    headers = dict(response.headers)
    assert headers["x-edgerelay-repaired"] == "thinking"
    assert "x-edgerelay-repaired" in headers["access-control-expose-headers"]


@pytest.mark.parametrize("assistant", CLIENT_FORMS)
def test_a_model_that_cannot_think_less_is_told_to_send_the_reasoning_details(assistant):
    body = {"messages": [USER, assistant, RESULT], "tools": TOOLS, "reasoning_effort": "low"}
    response, sent = claude("claude-opus-4-7", body)
    assert response.status == 400
    assert sent is None  # nothing reached Anthropic
    error = error_of(response)
    assert error["param"] == "messages[1].reasoning_details"
    assert "reasoning_details" in error["message"] and "claude-opus-4-7" in error["message"]


def test_no_repair_when_the_signed_thinking_came_back_or_the_turn_is_over():
    signed = {
        **CLIENT_FORMS[0],
        "reasoning_details": [
            {
                "type": "reasoning.text",
                "text": "t",
                "signature": "sig",
                "format": "anthropic-claude-v1",
                "model": "claude-opus-4-7",
                "index": 0,
            }
        ],
    }
    body = {"messages": [USER, signed, RESULT], "tools": TOOLS, "reasoning_effort": "low"}
    response, sent = claude("claude-opus-4-7", body)
    assert response.status == 200 and repaired(response) is None
    assert sent["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "t",
        "signature": "sig",
    }
    # A user message after the tool results starts a new turn: nothing to continue.
    later = [USER, CLIENT_FORMS[0], RESULT, {"role": "assistant", "content": "It is sunny."}, USER]
    response, sent = claude("claude-opus-4-7", {"messages": later, "reasoning_effort": "low"})
    assert response.status == 200 and repaired(response) is None
    assert sent["thinking"] == {"type": "adaptive"}
    # Without thinking asked for, nothing needs the signatures.
    body = {"messages": [USER, CLIENT_FORMS[0], RESULT], "tools": TOOLS}
    response, sent = claude("claude-opus-4-7", body)
    assert response.status == 200 and repaired(response) is None and "thinking" not in sent


def test_thinking_of_another_model_is_dropped_before_translation():
    item = {
        "type": "reasoning.text",
        "text": "t",
        "signature": "sig",
        "format": "anthropic-claude-v1",
        "model": "claude-opus-4-6",
        "index": 0,
    }
    assistant = {"role": "assistant", "content": "Hello", "reasoning_details": [item]}
    messages = [USER, assistant, USER]
    _, sent = claude("claude-sonnet-4-5", {"messages": messages})
    assert sent["messages"][1]["content"] == [{"type": "text", "text": "Hello"}]
    _, sent = claude("claude-opus-4-6", {"messages": messages})
    assert sent["messages"][1]["content"][0]["type"] == "thinking"
    # Sent with a tool turn to another model: stripped, so the turn is repaired.
    tool_turn = {**CLIENT_FORMS[0], "reasoning_details": [item]}
    body = {"messages": [USER, tool_turn, RESULT], "tools": TOOLS, "reasoning_effort": "low"}
    response, sent = claude("claude-sonnet-4-6", body)
    assert repaired(response) == "thinking" and "thinking" not in sent


def test_reasoning_details_name_the_model_that_made_them():
    def thinking_answer(request):
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-opus-4-6-20260205",
            "content": [
                {"type": "thinking", "thinking": "hm", "signature": "sig"},
                {"type": "text", "text": "ok"},
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
        return FakeResponse(200, {}, [json.dumps(message).encode()])

    gateway, _ = make_gateway(thinking_answer, ANTHROPIC)
    body = {"model": "claude-opus-4-6", "messages": [USER], "reasoning_effort": "low"}
    response, _ = call(gateway, body=body)
    (item,) = json.loads(response.body)["choices"][0]["message"]["reasoning_details"]
    # The name the request used: the one the item will come back with.
    assert item["model"] == "claude-opus-4-6"


# --- Gemini 3: function calls sent back without their thought signatures -----------------------


def gemini_call(call_id, name="weather"):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}


def test_gemini_3_gets_the_placeholder_on_the_first_call_of_each_step_of_the_current_turn():
    messages = [
        {"role": "user", "content": "Weather in Paris and London?"},
        # parallel calls, no reasoning_details (as the AI SDK and LangChain send them back)
        {"role": "assistant", "content": None, "tool_calls": [gemini_call("a"), gemini_call("b")]},
        {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "b", "content": "rain"},
        # a second step, with its real signature
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [gemini_call("c", "book")],
            "reasoning_details": [
                {
                    "type": "reasoning.encrypted",
                    "data": "real-sig",
                    "id": "c",
                    "format": "google-gemini-v1",
                    "model": "gemini-3-flash-preview",
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "booked"},
    ]
    response, sent = gemini("gemini-3-flash-preview", {"messages": messages, "tools": TOOLS})
    assert repaired(response) == "thinking"
    first_step, second_step = sent["contents"][1]["parts"], sent["contents"][3]["parts"]
    assert first_step[0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert "thoughtSignature" not in first_step[1]  # only the first of parallel calls
    assert second_step[0]["thoughtSignature"] == "real-sig"  # real signatures win


def test_only_the_current_turn_and_only_gemini_3_get_the_placeholder():
    messages = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [gemini_call("a")]},
        {"role": "tool", "tool_call_id": "a", "content": "sunny"},
        {"role": "assistant", "content": "Sunny."},
        {"role": "user", "content": "And London?"},
        {"role": "assistant", "content": None, "tool_calls": [gemini_call("b")]},
        {"role": "tool", "tool_call_id": "b", "content": "rain"},
    ]
    response, sent = gemini("gemini-3-pro-preview", {"messages": messages, "tools": TOOLS})
    parts = [c["parts"] for c in sent["contents"]]
    assert "thoughtSignature" not in parts[1][0]  # an earlier turn: not validated
    assert parts[5][0]["thoughtSignature"] == "skip_thought_signature_validator"
    assert repaired(response) == "thinking"
    response, sent = gemini("gemini-2.5-flash", {"messages": messages, "tools": TOOLS})
    assert all("thoughtSignature" not in p for c in sent["contents"] for p in c["parts"])
    assert repaired(response) is None


def test_gemini_signatures_of_another_model_are_dropped():
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [gemini_call("a")],
        "reasoning_details": [
            {
                "type": "reasoning.encrypted",
                "data": "pro-sig",
                "id": "a",
                "format": "google-gemini-v1",
                "model": "gemini-3-pro-preview",
            }
        ],
    }
    messages = [USER, assistant, {"role": "tool", "tool_call_id": "a", "content": "x"}]
    _, sent = gemini("gemini-3-pro-preview", {"messages": messages, "tools": TOOLS})
    assert sent["contents"][1]["parts"][0]["thoughtSignature"] == "pro-sig"
    _, sent = gemini("gemini-3-flash-preview", {"messages": messages, "tools": TOOLS})
    assert sent["contents"][1]["parts"][0]["thoughtSignature"] == "skip_thought_signature_validator"
