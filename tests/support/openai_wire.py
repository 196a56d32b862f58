"""An OpenAI-style chat completion stream for fake upstreams (standard library only)."""

from __future__ import annotations

import json


def openai_chunks(n: int = 6) -> list[bytes]:
    """``n`` chunk frames (role first, then " w1", " w2", …) and ``data: [DONE]``."""
    chunks = []
    for i in range(n):
        delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f" w{i}"}
        body = {
            "id": "chatcmpl-up",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4.1-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        chunks.append(b"data: " + json.dumps(body).encode() + b"\n\n")
    return [*chunks, b"data: [DONE]\n\n"]
