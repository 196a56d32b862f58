"""Gemini behind /v1/chat/completions: the OpenAI request mapped to ``generateContent``.

The answer side lives in ``gemini_response`` (whole JSON answers, errors) and ``gemini_stream``
(the SSE state machine); this module is the ``ChatTranslation`` the gateway registers.
Mapping choices that are not obvious are written down in docs/gemini.md.
"""

from __future__ import annotations

import re

from ..chat import ChatRequest, dumps
from ..config import Config
from ..errors import bad_request
from ..fetch import FetchRequest
from ..routing import Route
from .base import ChatContext
from .gemini_messages import to_contents
from .gemini_response import translate_error, translate_response
from .gemini_stream import GeminiStream

__all__ = ["build_request", "stream_translator", "translate_error", "translate_response"]

# The model name goes into the URL path: anything else could reach another endpoint.
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_MAJOR = re.compile(r"gemini-(\d+)")

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
# Gemini 3 and later take a level; they cannot switch thinking off, "minimal" comes closest.
_LEVELS = {
    "none": "MINIMAL",
    "minimal": "MINIMAL",
    "low": "LOW",
    "medium": "MEDIUM",
    "high": "HIGH",
    "xhigh": "HIGH",
}
_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


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
    if provider.api_key:
        # A header, never ?key=: URLs end up in access logs and traces.
        headers["x-goog-api-key"] = provider.api_key
    url = f"{provider.base_url}/v1beta/models/{model}:{action}"
    body = dumps(to_gemini(chat.body, model))
    return FetchRequest("POST", url, headers, body, timeout=config.upstream_timeout)


def stream_translator(route: Route, ctx: ChatContext) -> GeminiStream:
    return GeminiStream(route, ctx)


def to_gemini(body: dict, model: str) -> dict:
    """The ``generateContent`` body for an OpenAI Chat Completions body."""
    for name, reason in _UNSUPPORTED.items():
        if body.get(name) not in (None, False, {}, []):
            raise bad_request(f"`{name}` is not supported: {reason}.", param=name)
    if body.get("n") not in (None, 1):
        raise bad_request("`n` must be 1 for Gemini models.", param="n")
    modalities = body.get("modalities")
    if isinstance(modalities, list) and any(m != "text" for m in modalities):
        raise bad_request("Only text output is translated for Gemini.", param="modalities")
    system, contents = to_contents(body["messages"])
    out: dict = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise bad_request("`tools` must be an array.", param="tools")
        out["tools"] = [{"functionDeclarations": [_declaration(t, i) for i, t in enumerate(tools)]}]
    choice = body.get("tool_choice")
    if choice is not None:
        mode = _tool_choice(choice)
        if tools:  # without tools there is nothing to choose; Gemini may refuse the config
            out["toolConfig"] = {"functionCallingConfig": mode}
    generation = _generation_config(body, model)
    if generation:
        out["generationConfig"] = generation
    return out


def _declaration(tool: object, i: int) -> dict:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or tool.get("type") != "function":
        raise bad_request(f"`tools[{i}]` must be a function tool.", param=f"tools[{i}]")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request(f"`tools[{i}].function.name` is required.", param=f"tools[{i}]")
    declaration = {"name": name}
    description, parameters = function.get("description"), function.get("parameters")
    if not isinstance(description, str | None) or not isinstance(parameters, dict | None):
        raise bad_request(
            f"`tools[{i}].function`: `description` must be a string and `parameters` an object.",
            param=f"tools[{i}]",
        )
    if description:
        declaration["description"] = description
    if parameters is not None:
        # parametersJsonSchema takes JSON Schema as OpenAI clients write it; the older
        # `parameters` field accepts only an OpenAPI subset.
        declaration["parametersJsonSchema"] = function["parameters"]
    return declaration


def _tool_choice(choice: object) -> dict:
    if isinstance(choice, str) and choice in _TOOL_MODES:
        return {"mode": _TOOL_MODES[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name:
            return {"mode": "ANY", "allowedFunctionNames": [name]}
    raise bad_request(
        "`tool_choice` must be auto, none, required or a named function.", param="tool_choice"
    )


def _generation_config(body: dict, model: str) -> dict:
    config: dict = {}
    limit = body.get("max_completion_tokens")
    if limit is None:
        limit = body.get("max_tokens")
    if limit is not None:
        config["maxOutputTokens"] = limit
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed")):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    # A zero penalty is the default; some Gemini models refuse the fields even then.
    for ours, theirs in (
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if body.get(ours):
            config[theirs] = body[ours]
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if stop:
            config["stopSequences"] = stop
    elif stop is not None:
        raise bad_request("`stop` must be a string or an array of strings.", param="stop")
    _response_format(body.get("response_format"), config)
    effort = body.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or effort not in _BUDGETS:
            allowed = ", ".join(_BUDGETS)
            raise bad_request(
                f"`reasoning_effort` must be one of: {allowed}.", param="reasoning_effort"
            )
        major = _MAJOR.match(model)
        if major and int(major.group(1)) >= 3:
            thinking: dict = {"thinkingLevel": _LEVELS[effort]}
        else:
            thinking = {"thinkingBudget": _BUDGETS[effort]}
        if effort != "none":
            thinking["includeThoughts"] = True  # thought summaries -> reasoning_content
        config["thinkingConfig"] = thinking
    return config


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
