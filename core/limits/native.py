"""What a passthrough call asks for, as limits need it: the model, the output limit to reserve,
whether it streams, whether it spends tokens at all, and whether the gateway may ask an
OpenAI-compatible stream for its usage. Read from the checked path and the body the client sent
(which goes upstream unchanged unless usage is asked for)."""

from __future__ import annotations

from typing import NamedTuple

from .. import safejson


class NativeCall(NamedTuple):
    model: str | None
    max_tokens: int | None  # what the client allowed the answer, if it said
    stream: bool
    body: dict  # the parsed body ({} when it is not a JSON object)
    # An OpenAI-compatible chat stream that did not ask for usage: the gateway may add
    # stream_options.include_usage and remove what it caused.
    may_add_usage: bool
    spends_tokens: bool  # False for token counting: a request, but no tokens


def read_call(kind: str, path: str, body: bytes) -> NativeCall:
    """``path``: the canonical path after the provider's name (``v1/messages``,
    ``v1beta/models/gemini-2.5-flash:streamGenerateContent``, ``v1/chat/completions``)."""
    parsed = _object(body)
    if kind == "gemini":
        name, _, verb = path.rsplit("/", 1)[-1].partition(":")
        config = parsed.get("generationConfig")
        limit = _count(config.get("maxOutputTokens")) if isinstance(config, dict) else None
        stream = verb == "streamGenerateContent"
        return NativeCall(name or None, limit, stream, parsed, False, verb != "countTokens")
    named = parsed.get("model")
    model = named if isinstance(named, str) else None
    stream = parsed.get("stream") is True
    if kind == "anthropic":
        counting = path.endswith("/count_tokens")
        return NativeCall(
            model, _count(parsed.get("max_tokens")), stream, parsed, False, not counting
        )
    limit = None
    for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        limit = limit or _count(parsed.get(name))
    options = parsed.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage") is True
    chat = path.endswith("chat/completions")
    return NativeCall(model, limit, stream, parsed, chat and stream and not asked, True)


def _object(body: bytes) -> dict:
    try:
        value = safejson.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None
