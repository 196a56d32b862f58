"""The provider contract: what every provider module (mock, openai, anthropic, gemini, and any
added later) supplies to the gateway, and the context the gateway hands it.

A provider module is the implementation: it defines the four functions of ``Provider`` and its
two flags at module level. The registry (``core.registry``) names the module; the gateway
imports it on first use and calls it the same way for every provider:

1. ``build_request`` turns the parsed chat request into the upstream request;
2. the answer either goes to the client byte for byte (``relays_openai``: the upstream speaks
   OpenAI already), or ``translate_response`` turns a JSON answer into OpenAI's and
   ``stream_translator`` makes the state machine that turns a stream into OpenAI chunks;
3. ``translate_error`` turns an upstream error answer into a ``GatewayError``.

Ids and the clock come in through ``ChatContext``, so output is deterministic under test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from ..chat import ChatRequest
from ..config import Config
from ..errors import GatewayError, stream_error_frame
from ..fetch import Fetch, FetchRequest
from ..routing import Route


class ChatContext:
    """Ids and time for an answer the gateway writes itself. ``completion_id`` and ``created``
    are drawn on first use only: an OpenAI passthrough needs neither, so the hot path does not
    pay for them."""

    __slots__ = (
        "_completion_id",
        "_created",
        "include_usage",
        "max_event_bytes",
        "new_id",
        "repaired",
    )

    def __init__(
        self,
        completion_id: str | Callable[[], str],
        created: int | Callable[[], float],
        new_id: Callable[[], str],
        include_usage: bool,
        max_event_bytes: int | None = None,
    ) -> None:
        self._completion_id = completion_id
        self._created = created
        self.new_id = new_id  # fresh random ids (tool call ids for Gemini)
        self.include_usage = include_usage
        # Most an upstream stream's event may hold (EDGERELAY_MAX_EVENT_BYTES); None: unbounded.
        self.max_event_bytes = max_event_bytes
        # Set by build_request when it had to change what the client sent to be answerable
        # ("thinking": a tool turn that lost its signed thinking); the response says so.
        self.repaired: str | None = None

    @classmethod
    def lazy(
        cls,
        clock: Callable[[], float],
        new_id: Callable[[], str],
        include_usage: bool,
        max_event_bytes: int | None = None,
    ) -> ChatContext:
        """A context drawing its id from ``new_id`` and its time from ``clock`` when asked."""
        return cls(lambda: "chatcmpl-" + new_id(), clock, new_id, include_usage, max_event_bytes)

    def draw(self) -> None:
        """Fix the id and the time now."""
        _ = self.completion_id, self.created

    @property
    def completion_id(self) -> str:
        """``chatcmpl-…``, used where the upstream gives no id."""
        if not isinstance(self._completion_id, str):
            self._completion_id = self._completion_id()
        return self._completion_id

    @property
    def created(self) -> int:
        """Unix seconds, from the injected clock."""
        if not isinstance(self._created, int):
            self._created = int(self._created())
        return self._created


class StreamTranslator(Protocol):
    """A state machine from the upstream's stream to OpenAI chunk frames."""

    def feed(self, chunk: bytes) -> bytes:
        """The OpenAI frames the events completed by ``chunk`` produce (possibly empty)."""
        ...

    def finish(self) -> bytes:
        """The upstream body ended: the last frames (or an error frame if it was cut short)."""
        ...

    def fail(self, error: GatewayError) -> bytes:
        """Frames telling the client the stream broke (the upstream was cut mid-way)."""
        ...


class Provider(Protocol):
    """What a provider module defines (see the module docstring)."""

    # True when the upstream answers in OpenAI's format: the answer (JSON or stream) reaches
    # the client byte for byte, and the two translate functions are never called.
    relays_openai: bool
    # An in-process upstream answering instead of the network (the mock), or None.
    local_upstream: Fetch | None

    def build_request(
        self, chat: ChatRequest, route: Route, config: Config, ctx: ChatContext
    ) -> FetchRequest:
        """The upstream request for a parsed chat request; ``GatewayError`` (400 naming the
        field) for what this provider cannot honour, before anything is sent."""
        ...

    def translate_response(self, body: bytes, route: Route, ctx: ChatContext) -> bytes:
        """A whole upstream JSON answer as an OpenAI ``chat.completion``."""
        ...

    def stream_translator(self, route: Route, ctx: ChatContext) -> StreamTranslator:
        """A fresh state machine for one upstream stream."""
        ...

    def translate_error(self, status: int, body: bytes, headers: Mapping[str, str]) -> GatewayError:
        """An upstream error answer (status >= 400) as the error the client gets."""
        ...


class Relay:
    """The stream translator of an upstream that already writes OpenAI chunks: bytes go on."""

    __slots__ = ()

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""

    def fail(self, error: GatewayError) -> bytes:
        return stream_error_frame(error)
