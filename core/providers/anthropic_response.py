"""Anthropic's JSON answer and errors in OpenAI's format, and what the stream shares with them:
the finish reasons, the usage arithmetic and the reasoning_details items (docs/extensions.md)."""

from __future__ import annotations

from collections.abc import Mapping

from .. import safejson
from ..chat_output import completion, count, usage
from ..errors import GatewayError
from ..routing import Route
from ..safejson import dumps
from .base import ChatContext

FORMAT = "anthropic-claude-v1"  # the ``format`` of our reasoning_details items (OpenRouter's)

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
}

# The HTTP status an Anthropic error type stands for; 529 overloaded becomes 503 for OpenAI
# clients (a status every HTTP client and SDK knows to retry).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 503,
}


def openai_usage(counts: dict) -> dict:
    """Anthropic usage as OpenAI's: cache reads and writes are prompt tokens too."""
    cached = count(counts, "cache_read_input_tokens")
    prompt = count(counts, "input_tokens") + count(counts, "cache_creation_input_tokens")
    details = counts.get("output_tokens_details")
    thinking = details.get("thinking_tokens") if isinstance(details, dict) else None
    return usage(prompt + cached, count(counts, "output_tokens"), cached=cached, reasoning=thinking)


def thinking_item(text: str, signature: str | None, index: int, model: str) -> dict:
    """A thinking block as a reasoning_details item; ``model`` made the signature, and only it
    takes the item back."""
    item: dict = {"type": "reasoning.text", "text": text}
    if signature:
        item["signature"] = signature
    item["format"] = FORMAT
    item["model"] = model
    item["index"] = index
    return item


def redacted_item(data: str, index: int, model: str) -> dict:
    """A redacted thinking block as a reasoning_details item."""
    return {
        "type": "reasoning.encrypted",
        "data": data,
        "format": FORMAT,
        "model": model,
        "index": index,
    }


def finish_reason(stop_reason: object) -> str:
    """OpenAI's finish_reason for Anthropic's ``stop_reason``; TypeError for one that is not a
    string (not Anthropic's shape: the caller answers 502)."""
    if stop_reason is None:
        return "stop"
    if not isinstance(stop_reason, str):
        raise TypeError("stop_reason is not a string")
    return FINISH_REASONS.get(stop_reason, "stop")


def error_from(error: object, status: int | None = None) -> GatewayError:
    """A GatewayError from Anthropic's ``{"type": ..., "message": ...}`` error object."""
    kind = error.get("type") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if status == 529:  # Anthropic's own "overloaded" status
        status = 503
    elif status is None:  # an error event inside a stream: only its type tells
        status = ERROR_STATUS.get(kind, 500) if isinstance(kind, str) else 500
    if not isinstance(message, str) or not message:
        message = f"The Anthropic upstream answered with an error ({kind or status})."
    return GatewayError(status, message, type=kind if isinstance(kind, str) else None)


def translate_response(body: bytes, route: Route, ctx: ChatContext) -> bytes:
    try:
        return _completion(safejson.loads(body), route, ctx)
    except (ValueError, LookupError, TypeError, AttributeError, RecursionError):
        # Not JSON, or JSON of another shape (a block's text that is not a string, ...).
        raise GatewayError(
            502, "The Anthropic upstream sent an answer that is not a message.", code="bad_gateway"
        ) from None


def _completion(answer: dict, route: Route, ctx: ChatContext) -> bytes:
    blocks = answer["content"]
    if not isinstance(blocks, list):
        raise TypeError
    texts: list[str] = []
    calls: list[dict] = []
    thinking: list[str] = []
    details: list[dict] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            function = {"name": block.get("name"), "arguments": _json(block.get("input") or {})}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
        elif kind == "thinking":
            thinking.append(block.get("thinking") or "")
            signed = block.get("signature")
            details.append(thinking_item(thinking[-1], signed, len(details), route.model))
        elif kind == "redacted_thinking":
            details.append(redacted_item(block.get("data"), len(details), route.model))
    # Content is a string unless the answer is tool calls alone, as OpenAI sends it.
    content = "".join(texts) if texts or not calls else None
    message: dict = {"role": "assistant", "content": content, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(thinking)
    if details:
        message["reasoning_details"] = details
    counts = answer.get("usage")
    return completion(
        answer.get("id") or ctx.completion_id,
        ctx.created,
        answer.get("model") or route.model,
        message,
        finish_reason(answer.get("stop_reason")),
        openai_usage(counts if isinstance(counts, dict) else {}),
    )


def translate_error(status: int, body: bytes, headers: Mapping[str, str]) -> GatewayError:
    """Anthropic's message and error type; 529 (overloaded) becomes 503."""
    try:
        error = safejson.loads(body).get("error")
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        error = None
    return error_from(error, status)


def _json(value: object) -> str:
    return dumps(value).decode()
