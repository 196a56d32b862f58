"""OpenAI Chat Completions output, written in one place: the ``chat.completion`` answer, the
``chat.completion.chunk`` frames of a stream and the usage object. The mock provider and both
translators (their JSON and their stream paths) write through these, so every answer the
gateway writes itself has the same shape, byte for byte.

Per-chunk cost matters on the stream path, so ``ChunkWriter`` builds the constant head and tail
of a chunk once; per chunk only the delta is encoded.
"""

from __future__ import annotations

from collections.abc import Mapping

from .safejson import dumps
from .sse import DONE

__all__ = ["DONE", "ChunkWriter", "completion", "count", "usage"]

_ROLE = b'{"role":"assistant","content":"","refusal":null}'
_OPEN = b',"logprobs":null,"finish_reason":null}]'


def count(counts: Mapping, key: str) -> int:
    """A token count from an upstream's usage; anything but a number (null, a string) is 0,
    never a crash."""
    value = counts.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage(
    prompt: int, completion: int, *, cached: int | None = None, reasoning: int | None = None
) -> dict:
    """OpenAI's usage object; the detail objects only when the upstream reports them."""
    out: dict = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return out


def completion(
    completion_id: str, created: int, model: str, message: dict, finish_reason: str, usage: dict
) -> bytes:
    """A whole ``chat.completion`` answer with one choice."""
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
    return dumps(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": usage,
        }
    )


class ChunkWriter:
    """The SSE frames of one streamed answer. ``delta`` takes the delta object already encoded
    (``safejson.dumps`` of it, or bytes spliced from encoded pieces)."""

    __slots__ = ("_created", "_head", "_pre", "_tail", "include_usage")

    def __init__(self, completion_id: str, created: int, model: str, include_usage: bool) -> None:
        self._created = created
        self.include_usage = include_usage
        # stream_options.include_usage: every chunk says "usage":null, the usage chunk last.
        self._tail = b',"usage":null}\n\n' if include_usage else b"}\n\n"
        self.restart(completion_id, model)

    def restart(self, completion_id: str, model: str) -> None:
        """Use the upstream's own id and model name from here on (known at its first event)."""
        self._head = (
            b'data: {"id":'
            + dumps(completion_id)
            + b',"object":"chat.completion.chunk","created":'
            + str(self._created).encode()
            + b',"model":'
            + dumps(model)
            + b","
        )
        self._pre = self._head + b'"choices":[{"index":0,"delta":'

    def delta(self, delta: bytes) -> bytes:
        """A chunk carrying ``delta`` (encoded JSON object), not finished."""
        return self._pre + delta + _OPEN + self._tail

    def role(self) -> bytes:
        """The first chunk: the assistant role, empty content."""
        return self.delta(_ROLE)

    def content(self, text: str) -> bytes:
        return self.delta(b'{"content":' + dumps(text) + b"}")

    def finish(self, reason: str) -> bytes:
        """The chunk with the finish reason and an empty delta."""
        return (
            self._pre + b'{},"logprobs":null,"finish_reason":' + dumps(reason) + b"}]" + self._tail
        )

    def usage(self, counts: dict) -> bytes:
        """The usage chunk (no choices), sent after the finish chunk when asked for."""
        return self._head + b'"choices":[],"usage":' + dumps(counts) + b"}\n\n"
