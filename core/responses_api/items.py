"""Output items, usage and the reasoning carrier shared by JSON answers and streams.

``encrypted_content`` of a reasoning item carries the chat layer's ``reasoning_details`` list
(Anthropic's signed thinking, Gemini's thought signatures; docs/extensions.md) so a client that
sends the item back restores them exactly. It is opaque to clients: a prefix marks it as ours,
the rest is the list as base64url JSON. Anything else (a real OpenAI reasoning item sent to
another provider) decodes to nothing and is left out, as chat leaves out foreign formats.
"""

from __future__ import annotations

import base64
import binascii

from .. import safejson
from ..safejson import dumps

_PREFIX = "edgerelay.v1."


def encode_details(details: list[dict]) -> str:
    """The ``encrypted_content`` string carrying ``reasoning_details`` items."""
    return _PREFIX + base64.urlsafe_b64encode(dumps(details)).decode("ascii")


def decode_details(content: object) -> list[dict]:
    """The ``reasoning_details`` items an ``encrypted_content`` of ours carries; [] otherwise."""
    if not isinstance(content, str) or not content.startswith(_PREFIX):
        return []
    try:
        details = safejson.loads(base64.urlsafe_b64decode(content[len(_PREFIX) :]))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return []
    if not isinstance(details, list):
        return []
    return [d for d in details if isinstance(d, dict)]


def message_item(item_id: str, text: str, status: str = "completed") -> dict:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [text_part(text)],
    }


def text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def reasoning_item(
    item_id: str, summary: str, details: list[dict], status: str = "completed"
) -> dict:
    item = {
        "id": item_id,
        "type": "reasoning",
        "summary": [summary_part(summary)] if summary else [],
        "encrypted_content": encode_details(details) if details else None,
    }
    item["status"] = status
    return item


def summary_part(text: str) -> dict:
    return {"type": "summary_text", "text": text}


def usage(chat_usage: object) -> dict | None:
    """Chat Completions usage in Responses' names (cached and reasoning details included)."""
    if not isinstance(chat_usage, dict):
        return None
    prompt = _count(chat_usage.get("prompt_tokens"))
    completion = _count(chat_usage.get("completion_tokens"))
    prompt_details = chat_usage.get("prompt_tokens_details")
    completion_details = chat_usage.get("completion_tokens_details")
    cached = _count(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else 0
    reasoning = (
        _count(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else 0
    )
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": _count(chat_usage.get("total_tokens")) or prompt + completion,
    }


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


# finish_reason -> (status, incomplete_details.reason)
STATUS = {
    "length": ("incomplete", "max_output_tokens"),
    "content_filter": ("incomplete", "content_filter"),
}


def status_of(finish_reason: object) -> tuple[str, dict | None]:
    """The response ``status`` and ``incomplete_details`` for a chat finish reason."""
    # Anything but a known string (null, or garbage from an upstream) is a normal finish.
    known = STATUS.get(finish_reason) if isinstance(finish_reason, str) else None
    status, reason = known or ("completed", None)
    return status, {"reason": reason} if reason else None
