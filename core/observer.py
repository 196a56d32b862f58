"""The stream observer: one small object that watches every event stream the gateway relays.

It sees each chunk at event boundaries (it holds back only an unfinished event), knows the
stream's own end marker, and so can tell a complete stream from one that broke off. When the
upstream breaks after the first byte, or the body ends without its end marker, it gives the
terminal error event in the protocol of the route the client called, so the client reads an
error, never a silently shortened answer:

==================  ====================================  ===================================
protocol            end marker                            terminal error
==================  ====================================  ===================================
``chat``            ``data: [DONE]``                      ``data: {"error": {...}}``
``responses``       ``response.completed`` /              ``event: response.failed`` carrying
                    ``response.incomplete`` /             ``response.error``
                    ``response.failed``
``anthropic``       ``message_stop``                      ``event: error`` (Anthropic's shape)
``gemini``          a candidate with ``finishReason``     ``data: {"error": {...}}``
``gemini-json``     the array's closing ``]``             ``,{"error": {...}}]``
==================  ====================================  ===================================

An error event the upstream sends itself also ends the stream (nothing is added after it).
So does an event larger than ``max_event_bytes`` (EDGERELAY_MAX_EVENT_BYTES): one the
observer would hold unfinished past it, or one a translator's parser refuses
(``sse.EventTooLarge`` from the source); reading stops there, and the client gets the
terminal error with ``code: event_too_large``. What one stream holds is then bounded.

It stays cheap on the hot path: a boundary check is one ``endswith``, and each protocol looks
for a few byte strings with ``in``; JSON is parsed only for an event holding one of them (in
practice the last one or two of a stream).

Later features plug in here through ``StreamHook`` (usage accounting, an idle timer, cache
recording): hooks get the whole events as they go out and one ``StreamEnd`` when the stream is
over, however it ended. One hook per stream may also edit the events before they go out
(``StreamHook.edit``: limits remove what asking for usage added), so a feature that changes
a stream needs no second pass over its bytes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Literal, NamedTuple

from .errors import GatewayError
from .fetch import FetchError
from .framing import EventAligner, JsonArrayFramer, event_start
from .sse import EventTooLarge, SSEEvent, SSEParser, encode_data, encode_event

Protocol = Literal["chat", "responses", "anthropic", "gemini", "gemini-json"]

# How a stream ended, for hooks (and logs).
Reason = Literal["complete", "upstream_error", "broken", "unterminated", "cut", "cancelled"]


class StreamEnd(NamedTuple):
    """How one relayed stream ended.

    ``reason``: ``complete`` (its end marker arrived), ``upstream_error`` (the upstream sent its
    own error event), ``broken`` (the upstream connection failed mid-way), ``unterminated``
    (the body ended without its end marker), ``cut`` (the gateway ended it: a limit, a bug),
    ``cancelled`` (the client went away first). ``error`` is the terminal error the gateway
    added, if any; ``relayed`` counts the bytes passed to the client."""

    reason: Reason
    error: GatewayError | None
    relayed: int

    @property
    def complete(self) -> bool:
        return self.reason == "complete"


class StreamHook:
    """Override what you need: the methods do nothing by default. A hook that changes the
    events sets ``edits`` and implements ``edit``."""

    edits = False

    def edit(self, data: bytes) -> bytes:
        """``data``: one or more whole events from the upstream; returns what goes to the
        client instead (only called on a hook whose ``edits`` is true)."""
        return data

    def on_events(self, data: bytes) -> None:
        """``data``: one or more whole events, exactly as they go to the client."""

    def on_end(self, end: StreamEnd) -> None:
        """Called once, when the stream is over however it ended."""


# Makes the hooks for one stream: (the route's protocol) -> a hook, or None for none.
HookFactory = Callable[[Protocol], StreamHook | None]


class IdleTimed(StreamHook):
    """Marks a stream whose gaps between chunks must be timed (the idle timeout). With it the
    observer is ``watched``, so an adapter that could hand the upstream's body on untouched
    (the Worker's zero copy, which no code reads) pumps the stream through core instead, where
    each read of the upstream is timed by the platform's Fetch (``FetchRequest.idle_timeout``).
    It does nothing per event: what it costs is the pump's (docs/cloudflare.md)."""


def idle_timed(protocol: Protocol) -> StreamHook:
    """A ``HookFactory``: every relayed stream is idle-timed."""
    return IdleTimed()


class StreamObserver:
    """``feed(bytes) -> bytes`` to send now; ``finish() -> bytes`` at the body's clean end;
    ``fail(error) -> bytes`` when it must end early; ``close()`` when the client left."""

    __slots__ = ("_edit", "_framer", "_hooks", "_kind", "_watch", "ended", "failure", "relayed")

    def __init__(
        self,
        protocol: Protocol,
        hooks: Sequence[StreamHook] = (),
        max_event_bytes: int | None = None,
    ) -> None:
        self._kind = _KINDS[protocol]()
        self._framer: EventAligner | JsonArrayFramer = (
            JsonArrayFramer(max_event_bytes)
            if protocol == "gemini-json"
            else EventAligner(max_event_bytes)
        )
        self._hooks: tuple[StreamHook, ...] = ()
        self._edit: Callable[[bytes], bytes] | None = None
        for hook in hooks:
            self.add(hook)
        self.ended: Reason | None = None  # set once the stream is over
        self._watch = True  # still looking for the end marker
        self.failure: GatewayError | None = None  # the terminal error the gateway added
        self.relayed = 0

    @property
    def protocol(self) -> Protocol:
        return self._kind.name

    @property
    def watched(self) -> bool:
        """Whether a hook needs to see the bytes (a byte-for-byte passthrough that skips the
        observer, as the Worker's zero-copy one does, would leave it blind)."""
        return bool(self._hooks)

    def add(self, hook: StreamHook) -> None:
        """Let ``hook`` watch this stream too (before its first byte); at most one edits."""
        if hook.edits:
            if self._edit is not None:
                raise ValueError("a stream has at most one editing hook")
            self._edit = hook.edit
        self._hooks = (*self._hooks, hook)

    def feed(self, chunk: bytes) -> bytes:
        ended = self.ended
        if ended is not None and ended != "complete":
            return b""  # an error went out: nothing may follow it
        framer = self._framer
        out = framer.feed(chunk)
        if out:
            if self._edit is not None:
                out = self._edit(out)
            if self._watch and out:
                found = self._kind.scan(out, framer)
                if found is not None:
                    self._watch = False
                    self.ended = found
            self.relayed += len(out)
            for hook in self._hooks:
                hook.on_events(out)
        if framer.overflow is not None and self.ended is None:
            return out + self._terminal(event_too_large(framer.overflow), "cut")
        return out

    def finish(self) -> bytes:
        """The body ended cleanly: what was held, or the terminal error when the stream's end
        marker never came."""
        if self.ended is not None and self.ended != "complete":
            self._end(self.ended)
            return b""
        out = self._framer.flush()
        if out and self._edit is not None:
            out = self._edit(out)
        if out and self._watch:
            found = self._kind.scan(out, self._framer)
            if found is not None:
                self._watch = False
                self.ended = found
        if self.ended is None:
            self._framer.drop()
            error = GatewayError(
                502, "The upstream stream ended before the answer was complete.", code="bad_gateway"
            )
            return self._terminal(error, "unterminated")
        if out:
            self._sent(out)
        self._end(self.ended)
        return out

    def fail(self, error: GatewayError, reason: Reason = "cut") -> bytes:
        """End the stream early with ``error``: the terminal error event to send last (after
        the held unfinished event is dropped), or nothing when the stream had already ended."""
        self._framer.drop()
        if self.ended is not None:  # complete (nothing was lost), or an error already went out
            self._end(self.ended)
            return b""
        return self._terminal(error, reason)

    def close(self) -> None:
        """The stream stopped without finish or fail (the client went away)."""
        if self.ended is None:
            self.ended = "cancelled"
        self._end(self.ended)

    def _terminal(self, error: GatewayError, reason: Reason) -> bytes:
        self.failure = error
        self.ended = reason
        out = self._kind.terminal(error, self._framer)
        if not self._framer.at_boundary:
            out = b"\n\n" + out  # an oversized event went out unfinished: end it first
        self._sent(out)
        self._end(reason)
        return out

    def _sent(self, out: bytes) -> None:
        self.relayed += len(out)
        for hook in self._hooks:
            hook.on_events(out)

    def _end(self, reason: Reason) -> None:
        hooks, self._hooks = self._hooks, ()  # once only: later calls find no hooks
        end = StreamEnd(reason, self.failure, self.relayed)
        for hook in hooks:
            hook.on_end(end)


def observe(
    source: AsyncIterator[bytes], observer: StreamObserver, on_failure: Callable[[], None]
) -> AsyncIterator[bytes]:
    """Relay ``source`` through ``observer``. An upstream that breaks mid-way, or ends without
    its end marker, ends the body with the terminal error event (``on_failure`` is called
    before it goes out, so an adapter can flag it out of band too); other errors (a bug) reach
    the adapter, which ends the body with ``observer.fail``. Closing the result closes
    ``source`` too, even before the first chunk."""
    return _Observed(source, observer, on_failure)


class _Observed:
    """The observed body: an async iterator written out rather than an async generator, one
    layer less per chunk (~1.5 us of the observer's ~7 us per chunk, measured with
    bench/observer_bench.py). ``aclose`` also closes the source: it may hold what must end with
    the stream (a limits account gives its stream slot back)."""

    __slots__ = ("_done", "_observer", "_on_failure", "_source", "_started")

    def __init__(
        self,
        source: AsyncIterator[bytes],
        observer: StreamObserver,
        on_failure: Callable[[], None],
    ) -> None:
        self._source = source
        self._observer = observer
        self._on_failure = on_failure
        self._started = False
        self._done = False  # the stream ended, or an error came out of it

    def __aiter__(self) -> _Observed:
        return self

    async def __anext__(self) -> bytes:
        observer = self._observer
        self._started = True
        while not self._done:
            try:
                chunk = await self._source.__anext__()
            except StopAsyncIteration:
                self._done = True
                out = observer.finish()
            except FetchError as exc:
                self._done = True
                out = observer.fail(
                    GatewayError(502, f"The upstream stream broke off: {exc}", code="bad_gateway"),
                    "broken",
                )
            except EventTooLarge as exc:  # a translator's parser refused one: the same end
                self._done = True
                out = observer.fail(event_too_large(exc))
            except BaseException:
                self._done = True  # a bug, or the task was cancelled: the adapter ends it
                raise
            else:
                out = observer.feed(chunk)
                if observer.failure is None:  # else an oversized event ended the stream
                    if out:
                        return out
                    continue
                self._done = True
            if observer.failure is not None:
                await _close(self._source)  # reading stops here (a no-op for one that raised)
                self._on_failure()
            if out:
                return out
        raise StopAsyncIteration

    async def aclose(self) -> None:
        try:
            if self._started and not self._done:
                self._done = True
                self._observer.close()  # the client left mid-stream
        finally:
            await _close(self._source)


def event_too_large(exc: EventTooLarge) -> GatewayError:
    """The terminal error of a stream whose upstream sent an event past the limit."""
    return GatewayError(
        502, f"The upstream sent {exc} (EDGERELAY_MAX_EVENT_BYTES).", code="event_too_large"
    )


async def _close(source: AsyncIterator[bytes]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()


def events(data: bytes) -> list[SSEEvent]:
    """The SSE events in ``data`` (whole events, as the observer passes them)."""
    parser = SSEParser()
    return parser.feed(data) + parser.finish()


def events_from(data: bytes, markers: tuple[bytes, ...]) -> list[SSEEvent]:
    """The SSE events of ``data`` (whole events) from the first one holding one of ``markers``
    on: the events a scan must read. Parsing every event of a read would cost a stream whose
    events arrive together (a fast upstream, a busy gateway) ~10 us per event for nothing."""
    found = [at for at in map(data.find, markers) if at >= 0]
    if not found:
        return []
    return events(data[event_start(data, min(found)) :])


def _json(data: str) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return None


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


# Each protocol: ``scan(out, framer)`` -> how the stream ended, if ``out`` ends it;
# ``terminal(error, framer)`` -> its terminal error event.


class _Chat:
    name: Protocol = "chat"

    def scan(self, out: bytes, framer) -> Reason | None:
        # find, not ``in``: bytes' ``in`` first tries the needle as an int (an exception raised
        # and cleared), 3-6x slower per chunk on CPython 3.11-3.13.
        if out.find(b"[DONE]") >= 0:
            if out == _DONE_EVENT or out.endswith(_LAST_DONE_EVENT):
                return "complete"  # as every server writes it: no need to parse
            if any(e.data == "[DONE]" for e in events_from(out, _DONE)):
                return "complete"
        if out.find(b'"error"') >= 0:
            for event in events_from(out, _ERROR):
                body = _json(event.data)
                if isinstance(body, dict) and isinstance(body.get("error"), dict):
                    return "upstream_error"
        return None

    def terminal(self, error: GatewayError, framer) -> bytes:
        return encode_data(error.render("openai"))


_DONE = (b"[DONE]",)
_DONE_EVENT = b"data: [DONE]\n\n"
_LAST_DONE_EVENT = b"\n\n" + _DONE_EVENT  # the last event of a read, after another one
_ERROR = (b'"error"',)
_RESPONSES_ENDS = ("response.completed", "response.incomplete", "response.failed")
_RESPONSES_MARKERS = (
    b"response.created",
    b"response.completed",
    b"response.incomplete",
    b"response.failed",
    b'"error"',
)
_ANTHROPIC_MARKERS = (b"message_stop", b'"error"')
_GEMINI_MARKERS = (b'"finishReason"', b'"error"')


class _Responses:
    """OpenAI's Responses API stream: typed events, each with a ``sequence_number``."""

    name: Protocol = "responses"

    __slots__ = ("_response", "_sequence")

    def __init__(self) -> None:
        self._response: dict | None = None  # from response.created: the failed one copies it
        self._sequence = -1

    def scan(self, out: bytes, framer) -> Reason | None:
        self._note_sequence(out)
        for event in events_from(out, _RESPONSES_MARKERS):
            body = _json(event.data)
            if not isinstance(body, dict):
                continue
            kind = body.get("type")
            if kind == "response.created" and isinstance(body.get("response"), dict):
                self._response = body["response"]
            elif kind in _RESPONSES_ENDS:
                return "complete"
            elif kind == "error":
                return "upstream_error"
        return None

    def _note_sequence(self, out: bytes) -> None:
        at = out.rfind(b'"sequence_number":')
        if at < 0:
            return
        start = at + len(b'"sequence_number":')
        end = start
        while end < len(out) and out[end : end + 1] in b" 0123456789":
            end += 1
        digits = out[start:end].strip()
        if digits.isdigit():
            self._sequence = int(digits)

    def terminal(self, error: GatewayError, framer) -> bytes:
        response = dict(self._response or {"object": "response", "output": []})
        response["status"] = "failed"
        response["error"] = {"code": "server_error", "message": error.message}
        event = {
            "type": "response.failed",
            "sequence_number": self._sequence + 1,
            "response": response,
        }
        return encode_event(_dumps(event), "response.failed")


class _Anthropic:
    name: Protocol = "anthropic"

    def scan(self, out: bytes, framer) -> Reason | None:
        for event in events_from(out, _ANTHROPIC_MARKERS):
            body = _json(event.data)
            kind = body.get("type") if isinstance(body, dict) else None
            if kind == "message_stop" or event.event == "message_stop":
                return "complete"
            if kind == "error" or event.event == "error":
                return "upstream_error"
        return None

    def terminal(self, error: GatewayError, framer) -> bytes:
        return encode_event(error.render("anthropic"), "error")


def _gemini_end(body: object) -> Reason | None:
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("error"), dict):
        return "upstream_error"
    candidates = body.get("candidates")
    if isinstance(candidates, list) and any(
        isinstance(c, dict) and c.get("finishReason") for c in candidates
    ):
        return "complete"
    return None


class _Gemini:
    """``streamGenerateContent?alt=sse``: Gemini sends no terminator; the frame whose
    candidate carries ``finishReason`` is the last of the answer."""

    name: Protocol = "gemini"

    def scan(self, out: bytes, framer) -> Reason | None:
        for event in events_from(out, _GEMINI_MARKERS):
            found = _gemini_end(_json(event.data))
            if found is not None:
                return found
        return None

    def terminal(self, error: GatewayError, framer) -> bytes:
        return encode_data(error.render("gemini"))


class _GeminiJson:
    """``streamGenerateContent`` without ``alt=sse``: one JSON array, element by element."""

    name: Protocol = "gemini-json"

    def scan(self, out: bytes, framer) -> Reason | None:
        if b'"error"' in out:
            # Only the whole elements in ``out`` (it starts after a boundary): parse each.
            for element in _elements(out):
                if _gemini_end(_json(element)) == "upstream_error":
                    return "upstream_error"
        return "complete" if framer.closed else None

    def terminal(self, error: GatewayError, framer) -> bytes:
        body = error.render("gemini")
        if not framer.opened:
            return b"[" + body + b"]"
        return (b"," if framer.elements else b"") + body + b"]"


def _elements(out: bytes) -> list[str]:
    """Top-level elements of a piece of a JSON array that holds whole elements only."""
    text = out.decode("utf-8", "replace").strip().lstrip("[").rstrip("]").strip().lstrip(",")
    try:
        return [json.dumps(item) for item in json.loads("[" + text + "]")]
    except ValueError:
        return []


_KINDS: dict[str, Callable[[], _Chat | _Responses | _Anthropic | _Gemini | _GeminiJson]] = {
    "chat": _Chat,
    "responses": _Responses,
    "anthropic": _Anthropic,
    "gemini": _Gemini,
    "gemini-json": _GeminiJson,
}
