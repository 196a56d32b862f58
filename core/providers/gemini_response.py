"""Gemini answers and errors in OpenAI's shapes: the whole-JSON answer, the mapping tables the
stream shares, and Google's error bodies as ``GatewayError``."""

from __future__ import annotations

from collections.abc import Mapping

from .. import safejson
from ..chat_output import completion, count, usage
from ..errors import GatewayError
from ..routing import Route
from ..safejson import dumps
from .base import ChatContext

# `format` of our reasoning_details entries carrying thought signatures (docs/extensions.md).
FORMAT = "google-gemini-v1"

# Gemini finishReason -> OpenAI finish_reason. Anything not listed (OTHER, LANGUAGE,
# MALFORMED_FUNCTION_CALL, ...) has no OpenAI counterpart and becomes "stop".
FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}


def finish_reason(reason: str, has_calls: bool) -> str:
    """Gemini says STOP after function calls too; OpenAI clients (agent loops) run the tools
    only on "tool_calls", so an answer holding calls that stopped normally says that."""
    mapped = FINISH.get(reason, "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def openai_usage(meta: Mapping | None) -> dict:
    """OpenAI usage from ``usageMetadata``. Thinking tokens are billed as output, so they count
    in completion_tokens and are shown again as reasoning_tokens."""
    meta = meta if isinstance(meta, Mapping) else {}
    thoughts = count(meta, "thoughtsTokenCount")
    return usage(
        count(meta, "promptTokenCount"),
        count(meta, "candidatesTokenCount") + thoughts,
        cached=count(meta, "cachedContentTokenCount"),
        reasoning=thoughts,
    )


def signature(data: str, call_id: str | None, index: int, model: str) -> dict:
    """A thought signature as a reasoning_details item: ``call_id`` is the tool call it came
    on (None: on text); only ``model``, which made it, takes it back."""
    return {
        "type": "reasoning.encrypted",
        "data": data,
        "id": call_id,
        "format": FORMAT,
        "model": model,
        "index": index,
    }


def translate_response(body: bytes, route: Route, ctx: ChatContext) -> bytes:
    try:
        answer = safejson.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        answer = None
    if not isinstance(answer, dict):
        raise GatewayError(502, "The Gemini upstream answered with a body that is not JSON.")
    try:
        return _completion(answer, route, ctx)
    except (AttributeError, TypeError, KeyError, RecursionError):  # JSON, not Gemini's shapes
        raise GatewayError(502, "The Gemini upstream answered in an unexpected shape.") from None


def _completion(answer: dict, route: Route, ctx: ChatContext) -> bytes:
    candidates = answer.get("candidates") or [{}]
    candidate = candidates[0]
    texts: list = []
    thoughts: list = []
    calls: list = []
    details: list = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        call_id = None
        call = part.get("functionCall")
        if call is not None:
            call_id = "call_" + ctx.new_id()
            arguments = dumps(call.get("args") or {}).decode()
            function = {"name": call.get("name", ""), "arguments": arguments}
            calls.append({"id": call_id, "type": "function", "function": function})
        elif part.get("thought"):
            thoughts.append(part.get("text", ""))
        elif "text" in part:
            texts.append(part["text"])
        if "thoughtSignature" in part:
            signed = part["thoughtSignature"]
            details.append(signature(signed, call_id, len(details), route.model))
    message: dict = {"role": "assistant", "content": "".join(texts) or None, "refusal": None}
    if thoughts:
        message["reasoning_content"] = "".join(thoughts)
    if calls:
        message["tool_calls"] = calls
    if details:
        message["reasoning_details"] = details
    reason = candidate.get("finishReason")
    if reason is None and (answer.get("promptFeedback") or {}).get("blockReason"):
        reason = "SAFETY"  # the prompt itself was blocked: no candidate at all
    return completion(
        answer.get("responseId") or ctx.completion_id,
        ctx.created,
        answer.get("modelVersion") or route.model,
        message,
        finish_reason(reason or "STOP", bool(calls)),
        openai_usage(answer.get("usageMetadata")),
    )


def translate_error(status: int, body: bytes, headers: Mapping[str, str]) -> GatewayError:
    """Google's ``{"error": {"code", "message", "status", "details"}}``: same HTTP status,
    Google's message, its status name as the code, RetryInfo kept as ``retry_after``."""
    try:
        data = safejson.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        data = None
    if isinstance(data, list) and data:  # streamGenerateContent without alt=sse wraps it
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    return google_error(status, error)


def google_error(status: int, error: object) -> GatewayError:
    message = f"The Gemini upstream answered with status {status}."
    if not isinstance(error, dict):
        return GatewayError(status, message)
    code = error.get("status")
    return GatewayError(
        status,
        str(error.get("message") or message),
        code=code if isinstance(code, str) else None,
        retry_after=_retry_delay(error.get("details")),
    )


def _retry_delay(details: object) -> float | None:
    """``RetryInfo.retryDelay`` is a protobuf Duration in JSON: "58s", "1.5s"."""
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return float(delay[:-1])
                except ValueError:
                    return None
    return None
