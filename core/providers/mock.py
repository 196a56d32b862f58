"""``mock/echo``: answers with the last user message, word by word, in OpenAI's exact chunk
format. Deterministic and offline, so a fresh checkout can stream something at once.

It is a provider like the others: ``build_request`` addresses an in-process upstream
(``local_upstream``, an OpenAI-compatible echo server that never touches the network) and the
answer comes back through the same path as any other provider's.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping

from ..chat import ChatRequest, parse_chat_request, text_of
from ..chat_output import DONE, ChunkWriter, completion, usage
from ..config import Config
from ..fetch import FetchRequest
from ..routing import Route
from .base import ChatContext, Relay, StreamTranslator
from .openai import translate_error as translate_error  # the echo's errors are OpenAI's

relays_openai = False  # the answer is read (JSON) or relayed chunk by chunk (stream)

_WORDS = re.compile(r"\s*\S+")
_URL = "mock://echo/chat/completions"


def build_request(
    chat: ChatRequest, route: Route, config: Config, ctx: ChatContext
) -> FetchRequest:
    # The answer's id and time come from the gateway's injected sources, as for a real upstream
    # they come from the upstream.
    headers = {"x-completion-id": ctx.completion_id, "x-created": str(ctx.created)}
    return FetchRequest("POST", _URL, headers, chat.raw)


def translate_response(body: bytes, route: Route, ctx: ChatContext) -> bytes:
    return body  # already OpenAI's


def stream_translator(route: Route, ctx: ChatContext) -> StreamTranslator:
    return Relay()


async def local_upstream(request: FetchRequest) -> MockResponse:
    """The echo server: an OpenAI-compatible upstream in process."""
    assert isinstance(request.body, bytes)
    chat = parse_chat_request(request.body)
    completion_id = request.headers["x-completion-id"]
    created = int(request.headers["x-created"])
    if chat.stream:
        return MockResponse("text/event-stream", _stream(chat, completion_id, created))
    return MockResponse("application/json", _once(_completion(chat, completion_id, created)))


class MockResponse:
    """A ``FetchResponse`` over an in-process body."""

    __slots__ = ("_body", "headers", "native_body", "status")

    def __init__(self, content_type: str, body: AsyncIterator[bytes]) -> None:
        self.status = 200
        self.headers: Mapping[str, str] = {"content-type": content_type}
        self.native_body = None
        self._body = body

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._body

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self._body])

    async def aclose(self) -> None:
        await self._body.aclose()  # type: ignore[attr-defined]  # an async generator


def _reply(chat: ChatRequest) -> tuple[list[str], str, dict]:
    messages = chat.body["messages"]
    last_user = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    words = _WORDS.findall(text_of(last_user.get("content")) if last_user else "")
    finish = "stop"
    limit = chat.body.get("max_completion_tokens") or chat.body.get("max_tokens")
    if isinstance(limit, int) and 0 < limit < len(words):
        words, finish = words[:limit], "length"
    prompt_tokens = sum(len(_WORDS.findall(text_of(m.get("content")))) for m in messages)
    return words, finish, usage(prompt_tokens, len(words))


def _completion(chat: ChatRequest, completion_id: str, created: int) -> bytes:
    words, finish, counts = _reply(chat)
    message = {"role": "assistant", "content": "".join(words), "refusal": None}
    return completion(completion_id, created, chat.model, message, finish, counts)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _stream(chat: ChatRequest, completion_id: str, created: int) -> AsyncIterator[bytes]:
    words, finish, counts = _reply(chat)
    writer = ChunkWriter(completion_id, created, chat.model, chat.include_usage)
    yield writer.role()
    for word in words:
        yield writer.content(word)
    yield writer.finish(finish)
    if chat.include_usage:
        yield writer.usage(counts)
    yield DONE
