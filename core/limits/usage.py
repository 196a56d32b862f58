"""Token usage as each provider reports it, in one shape; and the estimate used when none came."""

from __future__ import annotations

from typing import NamedTuple

# Roughly four bytes of UTF-8 text per token in the common tokenizers; an estimate only for
# answers whose usage never arrived (so they are never charged zero).
BYTES_PER_TOKEN = 4


class Usage(NamedTuple):
    input: int = 0
    output: int = 0
    reasoning: int = 0  # part of output
    cached: int = 0  # part of input

    @property
    def total(self) -> int:
        return self.input + self.output

    def as_log(self) -> dict:
        return {
            "input": self.input,
            "output": self.output,
            "reasoning": self.reasoning,
            "cached": self.cached,
        }


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _get(obj, *path):
    for name in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


def from_openai(usage) -> Usage | None:
    """Chat Completions' and Responses' ``usage`` objects."""
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage:  # Responses API
        return Usage(
            _int(usage.get("input_tokens")),
            _int(usage.get("output_tokens")),
            _int(_get(usage, "output_tokens_details", "reasoning_tokens")),
            _int(_get(usage, "input_tokens_details", "cached_tokens")),
        )
    return Usage(
        _int(usage.get("prompt_tokens")),
        _int(usage.get("completion_tokens")),
        _int(_get(usage, "completion_tokens_details", "reasoning_tokens")),
        _int(_get(usage, "prompt_tokens_details", "cached_tokens")),
    )


def from_anthropic(usage) -> Usage | None:
    """Anthropic's ``usage``: input excludes cache reads and writes, which are billed as input."""
    if not isinstance(usage, dict):
        return None
    cached = _int(usage.get("cache_read_input_tokens"))
    written = _int(usage.get("cache_creation_input_tokens"))
    return Usage(
        _int(usage.get("input_tokens")) + cached + written,
        _int(usage.get("output_tokens")),
        0,
        cached,
    )


def from_gemini(metadata) -> Usage | None:
    """Gemini's ``usageMetadata``: thoughts are billed as output."""
    if not isinstance(metadata, dict):
        return None
    thoughts = _int(metadata.get("thoughtsTokenCount"))
    return Usage(
        _int(metadata.get("promptTokenCount")) + _int(metadata.get("toolUsePromptTokenCount")),
        _int(metadata.get("candidatesTokenCount")) + thoughts,
        thoughts,
        _int(metadata.get("cachedContentTokenCount")),
    )


def from_answer(answer) -> Usage | None:
    """The usage of a whole JSON answer of any of the three APIs, if it has one."""
    if not isinstance(answer, dict):
        return None
    if "usageMetadata" in answer:
        return from_gemini(answer["usageMetadata"])
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return None
    if answer.get("type") == "message" or "cache_read_input_tokens" in usage:
        return from_anthropic(usage)
    if "input_tokens" in usage and "output_tokens" in usage and "total_tokens" not in usage:
        return from_anthropic(usage)
    return from_openai(usage)


def estimate(request_bytes: int, relayed_bytes: int) -> Usage:
    """What an answer without usage is charged: tokens from the bytes seen, at least one."""
    return Usage(request_bytes // BYTES_PER_TOKEN, max(1, relayed_bytes // BYTES_PER_TOKEN))
