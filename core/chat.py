"""Parsing and checking an OpenAI Chat Completions request body; shared chunk builders."""

from __future__ import annotations

import json
from typing import NamedTuple

from . import safejson
from .errors import bad_request

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class ChatRequest(NamedTuple):
    body: dict  # the parsed JSON object, as the client sent it
    model: str
    stream: bool
    include_usage: bool


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Decode and check the fields every provider relies on; 400 naming the field otherwise."""
    try:
        body = safejson.loads(raw, parse_constant=_no_constant)
    except safejson.TooDeep:
        raise bad_request(
            f"The request body is nested too deeply (more than {safejson.MAX_DEPTH} levels)."
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("`model` is required and must be a non-empty string.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("`messages` is required and must be a non-empty array.", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(f"`messages[{i}]` must be an object.", param=f"messages[{i}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise bad_request(
                f"`messages[{i}].role` must be one of: {', '.join(sorted(ROLES))}.",
                param=f"messages[{i}].role",
            )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request("`stream` must be a boolean.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("`stream_options` must be an object.", param="stream_options")
    include_usage = bool(stream and options and options.get("include_usage"))
    return ChatRequest(body, model, stream, include_usage)


def _no_constant(name: str):
    """NaN and Infinity are not JSON (RFC 8259); Python's parser would accept them and pass
    them on upstream as invalid JSON."""
    raise ValueError(f"{name} is not a JSON value")


def text_of(content: object) -> str:
    """The text of a message's ``content``: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        )
    return ""


def dumps(obj: object) -> bytes:
    """Compact JSON, as chunks are sent on the wire."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # A lone surrogate (JSON allows the escape "\ud83d" alone) has no UTF-8 form. It can only
        # sit inside a JSON string, where backslashreplace writes back the very same escape.
        return text.encode("utf-8", "backslashreplace")


def part_text(part: dict, key: str, where: str) -> str:
    """A content part's text under ``key``: absent is empty, anything but a string is the
    client's 400 naming ``where.key``."""
    value = part.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_request(f"`{where}.{key}` must be a string.", param=f"{where}.{key}")
    return value
