"""Gemini behind /v1/chat/completions: the OpenAI request mapped to ``generateContent``.

The answer side lives in ``gemini_response`` (whole JSON answers, errors) and ``gemini_stream``
(the SSE state machine); this module is the gemini kind's provider contract (``base.Provider``).
Mapping choices that are not obvious are written down in docs/gemini.md.
"""

from __future__ import annotations

import re

from .. import registry
from ..chat import ChatRequest, Checked, Field, Tool, ToolChoice, check, map_fields
from ..config import Config
from ..errors import bad_request
from ..fetch import FetchRequest
from ..registry import ModelFacts
from ..routing import Route
from ..safejson import dumps
from .base import ChatContext
from .gemini_messages import sign_current_turn, to_contents
from .gemini_response import translate_error as translate_error
from .gemini_response import translate_response as translate_response
from .gemini_stream import GeminiStream

relays_openai = False
local_upstream = None

# The model name goes into the URL path: anything else could reach another endpoint.
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")

# Fields we cannot honour and that change what the client gets back: a 400 beats a silent
# difference. Each maps to the reason given.
_UNSUPPORTED = {
    "logprobs": "log probabilities are not translated for Gemini",
    "top_logprobs": "log probabilities are not translated for Gemini",
    "logit_bias": "Gemini has no logit bias",
    "audio": "audio output is not translated for Gemini",
    "prediction": "Gemini has no predicted outputs",
    "web_search_options": "use Gemini's own API for grounding with Google Search",
    "functions": "use `tools` instead of the deprecated `functions`",
}
# Gemini 2.5 thinking budgets, as Google's own OpenAI-compatible endpoint maps them.
_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}
# The lowest budget of a 2.5 model that cannot switch thinking off (2.5 Pro: 128 to 32768).
_LOWEST_BUDGET = 128
# Gemini 3 and later take a level (docs/gemini.md); which ones, the model's facts say.
_LEVEL_ORDER = ("MINIMAL", "LOW", "MEDIUM", "HIGH")
_LEVELS = {"minimal": "MINIMAL", "low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}

# OpenAI field -> generationConfig field (the table); the rest is in _generation_config.
FIELDS = (
    Field("max_tokens", "maxOutputTokens"),
    Field("temperature", "temperature"),
    Field("top_p", "topP"),
    Field("seed", "seed"),
    Field("stop", "stopSequences"),
)


def build_request(
    chat: ChatRequest, route: Route, config: Config, ctx: ChatContext
) -> FetchRequest:
    model = route.model.removeprefix("models/")
    if not _MODEL.match(model):
        raise bad_request(f"`{chat.model}` is not a valid Gemini model name.", param="model")
    action = "streamGenerateContent?alt=sse" if chat.stream else "generateContent"
    headers = {"content-type": "application/json"}
    headers["accept"] = "text/event-stream" if chat.stream else "application/json"
    provider = route.provider
    # A header, never ?key=: URLs end up in access logs and traces.
    headers.update(registry.key_headers(provider))
    url = f"{provider.base_url}/v1beta/models/{model}:{action}"
    facts = registry.model_facts(provider, route.model, config.model_facts)
    out = to_gemini(chat, model, facts or registry.GEMINI_NEWEST)
    if facts is not None and facts.signatures and sign_current_turn(out["contents"]):
        ctx.repaired = "thinking"
    body = dumps(out)
    return FetchRequest("POST", url, headers, body, timeout=config.upstream_timeout)


def stream_translator(route: Route, ctx: ChatContext) -> GeminiStream:
    return GeminiStream(route, ctx)


def to_gemini(chat: ChatRequest, model: str, facts: ModelFacts = registry.GEMINI_NEWEST) -> dict:
    """The ``generateContent`` body for an OpenAI Chat Completions request."""
    body = chat.body
    for name, reason in _UNSUPPORTED.items():
        if body.get(name) not in (None, False, {}, []):
            raise bad_request(f"`{name}` is not supported: {reason}.", param=name)
    if body.get("n") not in (None, 1):
        raise bad_request("`n` must be 1 for Gemini models.", param="n")
    modalities = body.get("modalities")
    if isinstance(modalities, list) and any(m != "text" for m in modalities):
        raise bad_request("Only text output is translated for Gemini.", param="modalities")
    checked = check(body)
    system, contents = to_contents(chat.messages(), model)
    out: dict = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    if checked.tools:
        out["tools"] = [{"functionDeclarations": [_declaration(t) for t in checked.tools]}]
        if checked.tool_choice is not None:
            # Without tools there is nothing to choose; Gemini may refuse the config.
            out["toolConfig"] = {"functionCallingConfig": _tool_choice(checked.tool_choice)}
    generation = _generation_config(body, checked, facts)
    if generation:
        out["generationConfig"] = generation
    return out


def _declaration(tool: Tool) -> dict:
    declaration: dict = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    if tool.parameters is not None:
        # parametersJsonSchema takes JSON Schema as OpenAI clients write it; the older
        # `parameters` field accepts only an OpenAPI subset.
        declaration["parametersJsonSchema"] = tool.parameters
    return declaration


def _tool_choice(choice: ToolChoice) -> dict:
    if choice.name is not None:
        return {"mode": "ANY", "allowedFunctionNames": [choice.name]}
    return {"mode": _TOOL_MODES[choice.mode]}


def _generation_config(body: dict, checked: Checked, facts: ModelFacts) -> dict:
    config: dict = {}
    map_fields(FIELDS, checked, body, config)
    # A zero penalty is the default; some Gemini models refuse the fields even then.
    for ours, theirs in (
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if body.get(ours):
            config[theirs] = body[ours]
    _response_format(body.get("response_format"), config)
    effort = checked.reasoning_effort
    if effort is not None:
        thinking = _thinking(effort, facts)
        if effort != "none":
            thinking["includeThoughts"] = True  # thought summaries -> reasoning_content
        config["thinkingConfig"] = thinking
    return config


def _thinking(effort: str, facts: ModelFacts) -> dict:
    """thinkingLevel (Gemini 3 and later) or thinkingBudget (2.5), as the model takes it."""
    if facts.thinking != "level":
        if effort == "none" and not facts.can_disable:
            return {"thinkingBudget": _LOWEST_BUDGET}
        return {"thinkingBudget": _BUDGETS[effort]}
    levels = facts.efforts
    if effort == "none":
        return {"thinkingLevel": levels[0]}  # cannot switch thinking off: its lowest level
    if effort == "xhigh":
        return {"thinkingLevel": levels[-1]}
    wanted = _LEVELS[effort]
    # A level the model lacks: the next one up (Gemini 3 Pro has LOW and HIGH only).
    above = _LEVEL_ORDER[_LEVEL_ORDER.index(wanted) :]
    return {"thinkingLevel": next((lv for lv in above if lv in levels), levels[-1])}


def _response_format(spec: object, config: dict) -> None:
    kind = spec.get("type") if isinstance(spec, dict) else spec
    if spec is None or kind == "text":
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
        return
    if (
        kind == "json_schema"
        and isinstance(spec, dict)
        and isinstance(spec.get("json_schema"), dict)
    ):
        config["responseMimeType"] = "application/json"
        schema = spec["json_schema"].get("schema")
        if schema is not None:
            config["responseJsonSchema"] = schema
        return
    raise bad_request(
        "`response_format` must be text, json_object or json_schema.", param="response_format"
    )
