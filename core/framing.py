"""Cutting a relayed stream on event boundaries, so that an error added after a failure is
always read as an event of its own.

Upstream chunks split events anywhere. Passing half an event on and then appending an error
event would glue the two into one unparseable event. The framers below pass on everything up
to the last boundary at once and hold back only the unfinished event after it; a well-behaved
upstream ends each chunk on a boundary, so in practice nothing is held and the check is one
``endswith``.

* ``EventAligner``: Server-Sent Events, where a blank line ends an event.
* ``JsonArrayFramer``: a streamed JSON array (Gemini's ``streamGenerateContent`` without
  ``alt=sse``), where the end of a top-level element is a boundary and the closing ``]`` ends
  the stream.
"""

from __future__ import annotations

import re

from .sse import EventTooLarge

# A blank line ends an event; lines end in LF, CRLF or CR, so these are every way it can look.
_BOUNDARIES = (b"\n\n", b"\r\r", b"\r\n\r\n", b"\n\r\n", b"\r\n\n")
# The same, to find every event's end in bytes already known to hold only whole events; at one
# offset the longest way wins (alternatives sharing a first byte are tried longest first).
_BOUNDARY = re.compile(rb"\r\n\r\n|\r\n\n|\r\r|\n\r\n|\n\n")
# An unfinished event is held up to this size; past it (no SSE framing we can keep) it is
# passed on as it is, and the stream is no longer at a boundary.
MAX_HELD = 4 * 1024 * 1024


def last_boundary_end(data: bytes) -> int:
    """The offset just past the last blank line in ``data``; 0 when there is none."""
    best = 0
    for mark in _BOUNDARIES:
        at = data.rfind(mark)
        if at >= 0:
            best = max(best, at + len(mark))
    return best


def event_start(data: bytes, at: int) -> int:
    """The offset where the SSE event holding offset ``at`` of ``data`` begins: just past the
    last blank line before ``at``, or 0."""
    best = 0
    for mark in _BOUNDARIES:
        found = data.rfind(mark, 0, at)
        if found >= 0:
            best = max(best, found + len(mark))
    return best


class _Holder:
    """What both framers share: the pieces of one unfinished event or element, held until it
    ends, and the ``limit`` on its size (``overflow`` once one passed it)."""

    __slots__ = ("_held", "_limit", "_size", "overflow")

    def __init__(self, limit: int | None) -> None:
        self._held: list[bytes] = []  # pieces of one unfinished event, joined once it ends
        self._size = 0
        self._limit = limit
        self.overflow: EventTooLarge | None = None  # set once an event passed ``limit``

    def flush(self) -> bytes:
        """At a clean end of stream: whatever was held, as the upstream sent it."""
        held = b"".join(self._held)
        self._held, self._size = [], 0
        return held

    def drop(self) -> int:
        """After a failure: forget the unfinished event; returns how many bytes were dropped."""
        size = self._size
        self._held, self._size = [], 0
        return size


class EventAligner(_Holder):
    """``feed(bytes) -> bytes`` of whole SSE events; ``flush()`` at a clean end; ``drop()``
    after a failure.

    With ``limit`` (EDGERELAY_MAX_EVENT_BYTES), an event past that many bytes, held
    unfinished or arriving whole inside one chunk, is dropped and ``overflow`` says so (the
    stream must end there); without it, such an event is passed on unfinished past
    ``MAX_HELD``."""

    __slots__ = ("at_boundary",)

    def __init__(self, limit: int | None = None) -> None:
        super().__init__(limit)
        self.at_boundary = True  # everything passed on so far ends on a boundary

    def feed(self, chunk: bytes) -> bytes:
        """Bytes that are safe to send now: whole events only."""
        if not self._held and chunk.endswith(b"\n\n"):
            # The usual chunk: whole events; only one longer than the limit can hold an
            # event longer than it.
            self.at_boundary = True
            if self._limit is None or len(chunk) <= self._limit:
                return chunk
            return self._before_oversized(chunk)
        out = self._whole_events(chunk)
        # Only bytes longer than the limit can hold an event longer than it: one comparison
        # per chunk in the usual case.
        if self._limit is not None and len(out) > self._limit and self.at_boundary:
            return self._before_oversized(out)
        return out

    def _before_oversized(self, out: bytes) -> bytes:
        """``out`` (whole events) up to the first event longer than the limit, if any."""
        start = 0
        for mark in _BOUNDARY.finditer(out):
            if mark.start() - start > self._limit:  # type: ignore[operator]
                self._held, self._size = [], 0
                self.overflow = EventTooLarge(f"an event larger than {self._limit} bytes")
                return out[:start]
            start = mark.end()
        return out

    def _whole_events(self, chunk: bytes) -> bytes:
        if not self._held:
            if chunk.endswith(b"\n\n"):  # the usual case: one check, no copy
                self.at_boundary = True
                return chunk
            end = last_boundary_end(chunk)
            if end == len(chunk):
                self.at_boundary = True
                return chunk
            return self._hold(chunk[:end], chunk[end:])
        # A boundary may begin in the held bytes (CR|LF split across chunks): look from the
        # held tail on, never through the whole held event again.
        tail = self._held[-1][-3:]
        end = last_boundary_end(tail + chunk) - len(tail)
        if end <= 0:
            return self._hold(b"", chunk)
        head = b"".join(self._held) + chunk[:end]
        self._held, self._size = [], 0
        if end == len(chunk):
            self.at_boundary = True
            return head
        return self._hold(head, chunk[end:])

    def _hold(self, out: bytes, rest: bytes) -> bytes:
        self._held.append(rest)
        self._size += len(rest)
        if self._limit is not None and self._size > self._limit:
            self._held, self._size = [], 0
            self.overflow = EventTooLarge(f"an event larger than {self._limit} bytes")
            return out  # whole events before it still go out
        if self._size > MAX_HELD:
            out += b"".join(self._held)
            self._held, self._size = [], 0
            self.at_boundary = False
            return out
        if out:
            self.at_boundary = True
        return out


# What moves the JSON framer: brackets and braces outside strings, quotes, and backslashes
# inside strings.
_STRUCTURE = re.compile(rb'[\[\]{}"]')
_IN_STRING = re.compile(rb'["\\]')


class JsonArrayFramer(_Holder):
    """``feed(bytes) -> bytes`` of whole top-level elements of a streamed JSON array.

    ``opened``: the ``[`` went out; ``elements``: whole elements passed on; ``closed``: the
    array's closing ``]`` arrived (the stream's own end marker), or the body turned out not to
    be an array (then it is passed on as it comes). With ``limit``, an element past that many
    bytes, held unfinished or arriving whole inside one chunk, is dropped and ``overflow``
    says so."""

    __slots__ = (
        "_depth",
        "_element_at",
        "_escape",
        "_in_string",
        "_offset",
        "closed",
        "elements",
        "opened",
    )

    def __init__(self, limit: int | None = None) -> None:
        super().__init__(limit)
        self._depth = 0
        self._in_string = False
        self._escape = False  # the previous chunk ended on a backslash inside a string
        self._offset = 0  # bytes of the stream before the chunk being scanned
        self._element_at = 0  # the stream offset where the current top-level element began
        self.opened = False
        self.closed = False
        self.elements = 0

    @property
    def at_boundary(self) -> bool:
        return True  # only whole elements are ever passed on

    def feed(self, chunk: bytes) -> bytes:
        if self.closed:
            return chunk
        cut = self._scan(chunk)
        self._offset += len(chunk)
        if self.overflow is not None:  # a whole element past the limit: keep what came before
            out = b"".join(self._held) + chunk[:cut] if cut >= 0 else b""
            self._held, self._size = [], 0
            return out
        if cut < 0:
            self._held.append(chunk)
            self._size += len(chunk)
            self._check()
            return b""
        out = b"".join(self._held) + chunk[:cut] if self._held else chunk[:cut]
        self._held = [chunk[cut:]] if cut < len(chunk) else []
        self._size = len(chunk) - cut
        self._check()
        return out

    def _check(self) -> None:
        if self._limit is not None and self._size > self._limit:
            self._held, self._size = [], 0
            self.overflow = EventTooLarge(f"an element larger than {self._limit} bytes")

    def _scan(self, chunk: bytes) -> int:
        """Move the state over ``chunk``; the offset just past its last boundary, or -1."""
        cut = -1
        pos, n = 0, len(chunk)
        if self._escape and n:
            self._escape = False
            pos = 1
        while pos < n:
            if self._in_string:
                found = _IN_STRING.search(chunk, pos)
                if found is None:
                    return cut
                pos = found.end()
                if found.group() == b"\\":
                    if pos == n:
                        self._escape = True
                        return cut
                    pos += 1
                else:
                    self._in_string = False
                continue
            found = _STRUCTURE.search(chunk, pos)
            if found is None:
                return cut
            char, pos = found.group(), found.end()
            if self._depth == 0 and char != b"[":
                # Not an array after all (an error object, say): nothing to frame or watch.
                self.closed = True
                return n
            if char == b'"':
                self._in_string = True
            elif char in b"[{":
                self._depth += 1
                if self._depth == 1:  # the array itself opened
                    self.opened = True
                    cut = pos
                elif self._depth == 2:  # a top-level element began
                    self._element_at = self._offset + pos - 1
            else:
                self._depth -= 1
                if self._depth == 1:  # a top-level element ended
                    limit = self._limit
                    if limit is not None and self._offset + pos - self._element_at > limit:
                        self.overflow = EventTooLarge(f"an element larger than {limit} bytes")
                        return cut  # the offset past the last whole element before it
                    self.elements += 1
                    cut = pos
                elif self._depth == 0:  # the closing ]
                    self.closed = True
                    return n
        return cut
