"""OpenAI chat streams as an upstream sends them when asked for usage (standard library only):
for the cache's tests, which record, assemble and replay them."""

from __future__ import annotations

import json


def chunk(delta: dict | None, finish: str | None = None, *, usage: bool = True) -> bytes:
    body = {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4.1-mini",
        "choices": [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = None
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def usage_chunk(prompt: int = 3, completion: int = 2) -> bytes:
    body = {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4.1-mini",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def answer(words=("Hel", "lo", " there"), finish="stop", *, usage=True) -> list[bytes]:
    """A whole streamed answer: role chunk, one chunk per word, finish, usage, [DONE]."""
    out = [chunk({"role": "assistant", "content": ""}, usage=usage)]
    out += [chunk({"content": w}, usage=usage) for w in words]
    out.append(chunk({}, finish, usage=usage))
    if usage:
        out.append(usage_chunk(3, len(words)))
    return [*out, DONE]


def text_of_chunks(batches: list[bytes]) -> list[str]:
    """The content pieces of a chat stream, in order (to compare text splits)."""
    pieces = []
    for batch in batches:
        for line in batch.split(b"\n"):
            if line.startswith(b"data: {"):
                body = json.loads(line[6:])
                for choice in body.get("choices", []):
                    content = choice.get("delta", {}).get("content")
                    if content:
                        pieces.append(content)
    return pieces
