"""``mock/echo``: answers with the last user message, word by word, in OpenAI's exact chunk
format. Deterministic and offline, so a fresh checkout can stream something at once."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from ..chat import ChatRequest, dumps, text_of
from ..sse import DONE, encode_data

_WORDS = re.compile(r"\s*\S+")


def _reply(chat: ChatRequest) -> tuple[list[str], str, dict]:
    messages = chat.body["messages"]
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    words = _WORDS.findall(text_of(last_user.get("content")) if last_user else "")
    finish = "stop"
    limit = chat.body.get("max_completion_tokens") or chat.body.get("max_tokens")
    if isinstance(limit, int) and 0 < limit < len(words):
        words, finish = words[:limit], "length"
    prompt_tokens = sum(len(_WORDS.findall(text_of(m.get("content")))) for m in messages)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(words),
        "total_tokens": prompt_tokens + len(words),
    }
    return words, finish, usage


def completion(chat: ChatRequest, completion_id: str, created: int) -> bytes:
    words, finish, usage = _reply(chat)
    return dumps(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": chat.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(words), "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": usage,
        }
    )


async def stream(chat: ChatRequest, completion_id: str, created: int) -> AsyncIterator[bytes]:
    words, finish, usage = _reply(chat)
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
    head["model"] = chat.model

    def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        body = {**head, "choices": [choice]}
        if chat.include_usage:
            body["usage"] = None
        return encode_data(dumps(body))

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for word in words:
        yield chunk({"content": word})
    yield chunk({}, finish)
    if chat.include_usage:
        yield encode_data(dumps({**head, "choices": [], "usage": usage}))
    yield DONE
