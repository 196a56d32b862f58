"""Anthropic Messages behind /v1/chat/completions: the ``ChatTranslation`` the gateway calls.

The request's parameters are mapped here (the tables below are that mapping's data), messages in
``anthropic_messages``, the JSON answer and errors in ``anthropic_response``, and the stream in
``anthropic_stream``. docs/anthropic.md is the user-facing account of all of it."""

from __future__ import annotations

from ..chat import ChatRequest, dumps
from ..config import Config
from ..errors import bad_request
from ..fetch import FetchRequest
from ..routing import Route
from .anthropic_messages import convert
from .anthropic_response import translate_error, translate_response
from .anthropic_stream import AnthropicStream
from .base import ChatContext

__all__ = ["build_request", "stream_translator", "translate_error", "translate_response"]

API_VERSION = "2023-06-01"

# reasoning_effort -> extended thinking budget_tokens (Anthropic's minimum is 1024).
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576, "xhigh": 32768}

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


def build_request(
    chat: ChatRequest, route: Route, config: Config, ctx: ChatContext
) -> FetchRequest:
    body = chat.body
    for name, rejects, why in REJECTED:
        if rejects(body.get(name)):
            raise bad_request(f"`{name}` is not supported here: {why}.", param=name)
    system, turns = convert(body["messages"])
    out: dict = {"model": route.model}
    if system:
        out["system"] = system[0]["text"] if len(system) == 1 else system
    out["messages"] = turns
    max_tokens, limit_field = _max_tokens(body)
    budget = _thinking_budget(body)
    if budget:
        if limit_field is None:  # room for the answer after the thinking
            max_tokens = budget + config.anthropic_default_max_tokens
        elif max_tokens <= budget:
            raise bad_request(
                f"`{limit_field}` ({max_tokens}) must be larger than the thinking budget of "
                f"reasoning_effort={body['reasoning_effort']!r} ({budget} tokens), which it "
                "includes; raise it or lower reasoning_effort.",
                param=limit_field,
            )
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    out["max_tokens"] = max_tokens or config.anthropic_default_max_tokens
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise bad_request("`stop` must be a string or an array of strings.", param="stop")
        if stop:
            out["stop_sequences"] = stop
    for name, ceiling in (("temperature", 1.0), ("top_p", 1.0)):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise bad_request(f"`{name}` must be a non-negative number.", param=name)
        out[name] = min(value, ceiling)  # OpenAI allows temperature up to 2, Anthropic 1
    if budget:
        _check_thinking_sampling(body)
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"), budget)
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
    if provider.api_key:
        headers["x-api-key"] = provider.api_key
    url = provider.base_url + "/v1/messages"
    return FetchRequest("POST", url, headers, dumps(out), timeout=config.upstream_timeout)


def stream_translator(route: Route, ctx: ChatContext) -> AnthropicStream:
    return AnthropicStream(route.model, ctx.completion_id, ctx.created, ctx.include_usage)


def _max_tokens(body: dict) -> tuple[int | None, str | None]:
    """The client's output limit and the field it came in (max_completion_tokens wins)."""
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad_request(f"`{name}` must be a positive integer.", param=name)
        return value, name
    return None, None


def _thinking_budget(body: dict) -> int | None:
    effort = body.get("reasoning_effort")
    if effort is None or effort == "none":
        return None
    budget = EFFORT_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        allowed = ", ".join(["none", *EFFORT_BUDGETS])
        raise bad_request(
            f"`reasoning_effort` must be one of: {allowed}.", param="reasoning_effort"
        )
    return budget


def _check_thinking_sampling(body: dict) -> None:
    # Anthropic refuses these with thinking on; OpenAI's reasoning models refuse them too.
    temperature, top_p = body.get("temperature"), body.get("top_p")
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


def _tools(tools: object) -> list[dict]:
    if not isinstance(tools, list):
        raise bad_request("`tools` must be an array.", param="tools")
    out = []
    for j, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise bad_request(f"`tools[{j}]`: only function tools are supported.", param="tools")
        if not isinstance(function.get("name"), str):
            raise bad_request(
                f"`tools[{j}].function.name` is required.", param=f"tools[{j}].function.name"
            )
        entry = {"name": function["name"]}
        for field, kind, what in (
            ("description", str, "a string"),
            ("parameters", dict, "an object"),
        ):
            if not isinstance(function.get(field), kind | None):
                where = f"tools[{j}].function.{field}"
                raise bad_request(f"`{where}` must be {what}.", param=where)
        if function.get("description"):
            entry["description"] = function["description"]
        entry["input_schema"] = function.get("parameters") or _EMPTY_SCHEMA
        out.append(entry)
    return out


def _tool_choice(choice: object, parallel: object, thinking: int | None) -> dict | None:
    function = choice.get("function") if isinstance(choice, dict) else None
    named = isinstance(function, dict) and choice.get("type") == "function"
    name = function.get("name") if named else None
    if choice is None:
        mapped = None
    elif choice in ("auto", "none"):
        mapped = {"type": choice}
    elif choice == "required":
        mapped = {"type": "any"}
    elif isinstance(name, str):
        mapped = {"type": "tool", "name": name}
    else:
        raise bad_request(
            "`tool_choice` must be auto, none, required or a named function.", param="tool_choice"
        )
    if thinking and mapped and mapped["type"] in ("any", "tool"):
        raise bad_request(
            "`tool_choice` cannot force a tool with `reasoning_effort` on Anthropic models; "
            "use auto or none.",
            param="tool_choice",
        )
    if parallel is False and (mapped is None or mapped["type"] != "none"):
        mapped = {**(mapped or {"type": "auto"}), "disable_parallel_tool_use": True}
    return mapped
