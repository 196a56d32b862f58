"""Incremental Server-Sent Events parser and encoder (WHATWG event-stream rules).

Feed bytes as they arrive, in any split; get complete events back. Lines end in CRLF, LF or CR
(a chunk may end between CR and LF), and a UTF-8 character may be split across chunks: lines are
found on bytes and decoded only when whole, so U+2028, U+2029 and U+0085 inside JSON are never
taken for line breaks.
"""

from __future__ import annotations

from typing import NamedTuple

_BOM = b"\xef\xbb\xbf"


class SSEEvent(NamedTuple):
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class EventTooLarge(ValueError):
    """An event (or one line of it) longer than the parser's ``max_event_bytes``."""


class SSEParser:
    """``feed(bytes) -> [SSEEvent]``; ``finish() -> [SSEEvent]`` at end of stream.

    With ``max_event_bytes``, a line still unfinished past that many bytes, or an event whose
    data lines add up to more, raises ``EventTooLarge``: what the parser holds is bounded, so
    an upstream sending one endless line cannot take the gateway's memory."""

    __slots__ = (
        "_buf",
        "_data",
        "_event",
        "_id",
        "_retry",
        "_has_data",
        "_started",
        "_skip_lf",
        "_max",
        "_size",
    )

    def __init__(self, max_event_bytes: int | None = None) -> None:
        self._max = max_event_bytes
        self._size = 0  # bytes of data held for the event being read
        self._buf = b""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self._has_data = False
        self._started = False  # the BOM check is done
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF belongs to it

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        buf = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(buf) < 3 and _BOM.startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[3:]
        events: list[SSEEvent] = []
        start = 0
        n = len(buf)
        while start < n:
            lf = buf.find(b"\n", start)
            cr = buf.find(b"\r", start, lf if lf >= 0 else n)
            if cr >= 0:
                end, nxt = cr, cr + 1
                if nxt < n:
                    if buf[nxt] == 10:  # CRLF
                        nxt += 1
                else:
                    self._skip_lf = True  # maybe the LF of a CRLF comes in the next chunk
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            event = self._line(buf[start:end])
            if event is not None:
                events.append(event)
            start = nxt
        self._buf = buf[start:]
        if self._max is not None and len(self._buf) > self._max:
            raise EventTooLarge(f"a line longer than {self._max} bytes")
        return events

    def finish(self) -> list[SSEEvent]:
        """End of stream. Unlike a browser, a last event missing its blank line is delivered:
        real streams are sometimes cut right after their final frame."""
        events = []
        if self._buf:
            buf, self._buf = self._buf, b""
            event = self._line(buf)
            if event is not None:
                events.append(event)
        event = self._line(b"")
        if event is not None:
            events.append(event)
        return events

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            return self._dispatch()
        line = raw.decode("utf-8", "replace")
        if line[0] == ":":
            return None
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
            if self._max is not None:
                self._size += len(raw)
                if self._size > self._max:
                    raise EventTooLarge(f"an event larger than {self._max} bytes")
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._has_data:
            self._event = ""
            return None
        event = SSEEvent("\n".join(self._data), self._event or "message", self._id, self._retry)
        self._data = []
        self._size = 0
        self._has_data = False
        self._event = ""
        return event


def encode_data(data: str | bytes) -> bytes:
    """One ``data:`` frame. Data holding line breaks is split into several ``data:`` lines."""
    raw = data.encode() if isinstance(data, str) else data
    if b"\n" in raw or b"\r" in raw:
        lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        return b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"
    return b"data: " + raw + b"\n\n"


def encode_event(data: str | bytes, event: str | None = None) -> bytes:
    """One event with an ``event:`` name (Anthropic's and the Responses API's framing)."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + encode_data(data)


def encode_comment(text: str) -> bytes:
    """An SSE comment: clients skip it, idle timers on the way see traffic."""
    return b": " + text.encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
