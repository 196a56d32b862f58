"""``reasoning.effort`` on /v1/responses goes through the per-model thinking table exactly as
``reasoning_effort`` does on chat (the same upstream body, the same config overrides), and a
tool turn sent back without its signed thinking is repaired or refused as on chat, with the
Responses field named."""

import json

import pytest

from tests.core.gateway_helpers import call, error_of, make_gateway
from tests.core.test_thinking_per_model import (
    ANTHROPIC,
    GEMINI,
    anthropic_answer,
    gemini_answer,
    repaired,
)

WEATHER = {"type": "function", "name": "weather", "parameters": {"type": "object"}}


def sent_bodies(handler, env, chat_body, responses_body):
    """The upstream body for the chat request and for the Responses request."""
    gateway, fetch = make_gateway(handler, env)
    chat, _ = call(gateway, "POST", "/v1/chat/completions", chat_body)
    responses, _ = call(gateway, "POST", "/v1/responses", responses_body)
    assert chat.status == 200, chat.body
    assert responses.status == 200, responses.body
    return [json.loads(r.body) for r in fetch.requests], responses


def both(model, effort):
    chat = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    responses = {"model": model, "input": "x"}
    if effort is not None:
        chat["reasoning_effort"] = effort
        responses["reasoning"] = {"effort": effort}
    return chat, responses


@pytest.mark.parametrize(
    ("model", "effort", "thinking", "output_config"),
    [
        ("anthropic/claude-opus-4-7", "xhigh", {"type": "adaptive"}, {"effort": "max"}),
        ("anthropic/claude-opus-4-7", "none", {"type": "adaptive"}, {"effort": "low"}),
        ("anthropic/claude-sonnet-4-6", "high", {"type": "adaptive"}, {"effort": "high"}),
        ("anthropic/claude-sonnet-4-6", "none", None, None),
        ("anthropic/claude-sonnet-4-5", "low", {"type": "enabled", "budget_tokens": 2048}, None),
        ("anthropic/claude-fable-9", "medium", {"type": "adaptive"}, {"effort": "medium"}),
    ],
)
def test_claude_effort_follows_the_per_model_table_as_on_chat(
    model, effort, thinking, output_config
):
    (chat, sent), _ = sent_bodies(anthropic_answer, ANTHROPIC, *both(model, effort))
    assert sent.get("thinking") == thinking
    assert sent.get("output_config") == output_config
    for field in ("thinking", "output_config", "max_tokens", "temperature"):
        assert sent.get(field) == chat.get(field)


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        (
            "gemini/gemini-3-pro-preview",
            "medium",
            {"thinkingLevel": "HIGH", "includeThoughts": True},
        ),
        (
            "gemini/gemini-3-flash-preview",
            "xhigh",
            {"thinkingLevel": "HIGH", "includeThoughts": True},
        ),
        ("gemini/gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini/gemini-2.5-pro", "none", {"thinkingBudget": 128}),
        ("gemini/gemini-flash-latest", "low", {"thinkingLevel": "LOW", "includeThoughts": True}),
    ],
)
def test_gemini_effort_follows_the_per_model_table_as_on_chat(model, effort, thinking):
    (chat, sent), _ = sent_bodies(gemini_answer, GEMINI, *both(model, effort))
    assert sent["generationConfig"]["thinkingConfig"] == thinking
    assert sent["generationConfig"] == chat["generationConfig"]


def test_a_config_override_row_applies_to_responses_too():
    toml = '[models.gemini."gemini-2.5-flash*"]\nthinking = "level"\nefforts = ["LOW", "HIGH"]\n'
    env = {**GEMINI, "EDGERELAY_CONFIG": toml}
    (_, sent), _ = sent_bodies(gemini_answer, env, *both("gemini/gemini-2.5-flash", "medium"))
    assert sent["generationConfig"]["thinkingConfig"]["thinkingLevel"] == "HIGH"


def test_an_unknown_effort_is_a_400_naming_reasoning_effort():
    gateway, fetch = make_gateway(anthropic_answer, ANTHROPIC)
    body = {"model": "anthropic/claude-opus-4-7", "input": "x", "reasoning": {"effort": "max!"}}
    response, _ = call(gateway, "POST", "/v1/responses", body)
    assert response.status == 400 and error_of(response)["param"] == "reasoning.effort"
    assert fetch.requests == []


# A tool turn sent back as items without the reasoning item that came with it.
TURN = [
    {"role": "user", "content": "Weather in Paris?"},
    {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
]


def test_a_tool_turn_without_its_reasoning_item_is_repaired_where_the_model_allows_it():
    gateway, fetch = make_gateway(anthropic_answer, ANTHROPIC)
    body = {
        "model": "anthropic/claude-sonnet-4-6",
        "input": TURN,
        "tools": [WEATHER],
        "reasoning": {"effort": "high"},
        "store": False,
    }
    for stream in (False, True):
        response, _ = call(gateway, "POST", "/v1/responses", {**body, "stream": stream})
        assert response.status == 200, response.body
        assert repaired(response) == "thinking"
        assert "thinking" not in json.loads(fetch.requests[-1].body)


def test_a_model_that_cannot_think_less_is_a_400_naming_the_input_item():
    gateway, fetch = make_gateway(anthropic_answer, ANTHROPIC)
    body = {
        "model": "anthropic/claude-opus-4-7",
        "input": TURN,
        "tools": [WEATHER],
        "reasoning": {"effort": "low"},
    }
    response, _ = call(gateway, "POST", "/v1/responses", body)
    assert response.status == 400 and fetch.requests == []
    error = error_of(response)
    assert error["param"].startswith("input[1]")
    assert "messages[" not in error["message"] and "claude-opus-4-7" in error["message"]
