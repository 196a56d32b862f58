"""What a translating provider module (Anthropic, Gemini) supplies to the gateway.

Each is data for the request mapping plus one stream state machine: ``feed(bytes) -> bytes``
of OpenAI SSE frames, ``finish() -> bytes`` at the end of the upstream body. Ids and the clock
come in through ``ChatContext``, so output is deterministic under test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple, Protocol

from ..chat import ChatRequest
from ..config import Config
from ..errors import GatewayError
from ..fetch import FetchRequest
from ..routing import Route


class ChatContext(NamedTuple):
    completion_id: str  # "chatcmpl-…", used where the upstream gives no id
    created: int  # unix seconds, from the injected clock
    new_id: Callable[[], str]  # fresh random ids (tool call ids for Gemini)
    include_usage: bool


class StreamTranslator(Protocol):
    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes: ...

    def fail(self, error: GatewayError) -> bytes:
        """Frames telling the client the stream broke (the upstream was cut mid-way)."""
        ...


class ChatTranslation(Protocol):
    def build_request(
        self, chat: ChatRequest, route: Route, config: Config, ctx: ChatContext
    ) -> FetchRequest: ...

    def translate_response(self, body: bytes, route: Route, ctx: ChatContext) -> bytes: ...

    def stream_translator(self, route: Route, ctx: ChatContext) -> StreamTranslator: ...

    def translate_error(
        self, status: int, body: bytes, headers: Mapping[str, str]
    ) -> GatewayError: ...
