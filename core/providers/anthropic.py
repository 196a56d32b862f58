"""Anthropic Messages behind /v1/chat/completions: the anthropic kind's provider contract
(``base.Provider``).

The request's parameters are mapped here (the tables below are that mapping's data), messages in
``anthropic_messages``, the JSON answer and errors in ``anthropic_response``, and the stream in
``anthropic_stream``. docs/anthropic.md is the user-facing account of all of it."""

from __future__ import annotations

from .. import registry
from ..chat import ChatRequest, Checked, Field, Tool, ToolChoice, check, map_fields
from ..config import Config
from ..errors import bad_request
from ..fetch import FetchRequest
from ..routing import Route
from ..safejson import dumps
from .anthropic_messages import convert
from .anthropic_response import translate_error as translate_error
from .anthropic_response import translate_response as translate_response
from .anthropic_stream import AnthropicStream
from .anthropic_thinking import missing_thinking, thinking_for, unsigned_tool_turn
from .base import ChatContext

relays_openai = False
local_upstream = None

API_VERSION = "2023-06-01"


# Fields Anthropic cannot honour and whose loss would change the answer: (field, rejects(value),
# why). Everything else unknown to the mapping is ignored (see IGNORED and docs/anthropic.md).
REJECTED = (
    ("n", lambda v: v is not None and v != 1, "only n=1 is supported by Anthropic"),
    ("logprobs", lambda v: bool(v), "log probabilities are not available from Anthropic"),
    ("top_logprobs", lambda v: v is not None, "log probabilities are not available from Anthropic"),
    (
        "response_format",
        lambda v: v is not None and (not isinstance(v, dict) or v.get("type") != "text"),
        "JSON mode and structured outputs are not supported for Anthropic models",
    ),
    ("audio", lambda v: v is not None, "audio output is not available from Anthropic"),
    (
        "modalities",
        lambda v: v is not None and v != ["text"],
        "Anthropic models answer in text only",
    ),
    ("functions", lambda v: v is not None, "use `tools` (the legacy `functions` is not mapped)"),
    ("function_call", lambda v: v is not None, "use `tool_choice` (legacy field, not mapped)"),
    ("web_search_options", lambda v: v is not None, "web search is not mapped to Anthropic"),
)

# Accepted and dropped: none of them changes what the answer says (docs/anthropic.md).
IGNORED = frozenset(
    {
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "seed",
        "service_tier",
        "store",
        "metadata",
        "prediction",
        "prompt_cache_key",
        "prompt_cache_retention",
        "verbosity",
    }
)

_EMPTY_SCHEMA = {"type": "object", "properties": {}}


# OpenAI field -> Anthropic field (the table); the rest is in build_request.
FIELDS = (
    Field("stop", "stop_sequences"),
    # OpenAI allows temperature up to 2, Anthropic 1.
    Field("temperature", "temperature", ceiling=1.0),
    Field("top_p", "top_p", ceiling=1.0),
)


def build_request(
    chat: ChatRequest, route: Route, config: Config, ctx: ChatContext
) -> FetchRequest:
    body = chat.body
    for name, rejects, why in REJECTED:
        if rejects(body.get(name)):
            raise bad_request(f"`{name}` is not supported here: {why}.", param=name)
    checked = check(body)
    facts = registry.model_facts(route.provider, route.model, config.model_facts)
    facts = facts or registry.CLAUDE_NEWEST
    thinking = thinking_for(checked.reasoning_effort, facts)
    messages = chat.messages()
    if thinking is not None:
        unsigned = unsigned_tool_turn(messages, route.model)
        if unsigned is not None:
            if not facts.can_disable:
                raise missing_thinking(unsigned, route.model)
            thinking, ctx.repaired = None, "thinking"  # as Anthropic's own 400 advises
    system, turns = convert(messages, route.model)
    out: dict = {"model": route.model}
    if system:
        out["system"] = system[0]["text"] if len(system) == 1 else system
    out["messages"] = turns
    max_tokens, limit_field = checked.max_tokens, checked.max_tokens_field
    budget = thinking.budget if thinking is not None else 0
    if budget:
        if limit_field is None or max_tokens is None:  # room for the answer after the thinking
            max_tokens = budget + config.anthropic_default_max_tokens
        elif max_tokens <= budget:
            raise bad_request(
                f"`{limit_field}` ({max_tokens}) must be larger than the thinking budget of "
                f"reasoning_effort={checked.reasoning_effort!r} ({budget} tokens), which it "
                "includes; raise it or lower reasoning_effort.",
                param=limit_field,
            )
    if thinking is not None:
        out["thinking"] = thinking.thinking
        if thinking.effort:
            out["output_config"] = {"effort": thinking.effort}
    out["max_tokens"] = max_tokens or config.anthropic_default_max_tokens
    map_fields(FIELDS, checked, body, out)
    if thinking is not None:
        _check_thinking_sampling(checked)
    if checked.tools:
        out["tools"] = [_tool(tool) for tool in checked.tools]
        choice = _tool_choice(
            checked.tool_choice, checked.parallel_tool_calls, thinking is not None
        )
        if choice:
            out["tool_choice"] = choice
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if chat.stream:
        out["stream"] = True
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if chat.stream else "application/json",
        "anthropic-version": API_VERSION,
    }
    provider = route.provider
    headers.update(registry.key_headers(provider))
    url = provider.base_url + "/v1/messages"
    return FetchRequest("POST", url, headers, dumps(out), timeout=config.upstream_timeout)


def stream_translator(route: Route, ctx: ChatContext) -> AnthropicStream:
    return AnthropicStream(
        route.model, ctx.completion_id, ctx.created, ctx.include_usage, ctx.max_event_bytes
    )


def _check_thinking_sampling(checked: Checked) -> None:
    # Anthropic refuses these with thinking on; OpenAI's reasoning models refuse them too.
    temperature, top_p = checked.temperature, checked.top_p
    if temperature is not None and temperature != 1:
        raise bad_request(
            "`temperature` cannot be set with `reasoning_effort` on Anthropic models "
            "(only 1 is allowed with thinking).",
            param="temperature",
        )
    if top_p is not None and top_p < 0.95:
        raise bad_request(
            "`top_p` must be between 0.95 and 1 with `reasoning_effort` on Anthropic models.",
            param="top_p",
        )


def _tool(tool: Tool) -> dict:
    entry: dict = {"name": tool.name}
    if tool.description:
        entry["description"] = tool.description
    entry["input_schema"] = tool.parameters or _EMPTY_SCHEMA
    return entry


def _tool_choice(choice: ToolChoice | None, parallel: bool | None, thinking: bool) -> dict | None:
    mapped: dict | None
    if choice is None:
        mapped = None
    elif choice.name is not None:
        mapped = {"type": "tool", "name": choice.name}
    elif choice.mode == "required":
        mapped = {"type": "any"}
    else:
        mapped = {"type": choice.mode}
    if thinking and mapped and mapped["type"] in ("any", "tool"):
        raise bad_request(
            "`tool_choice` cannot force a tool with `reasoning_effort` on Anthropic models; "
            "use auto or none.",
            param="tool_choice",
        )
    if parallel is False and (mapped is None or mapped["type"] != "none"):
        mapped = {**(mapped or {"type": "auto"}), "disable_parallel_tool_use": True}
    return mapped
