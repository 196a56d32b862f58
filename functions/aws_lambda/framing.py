"""Keep an event stream cut on event boundaries, so an error event added after a failure is
always read as an event of its own.

Upstream chunks split SSE events anywhere. Passing a partial event on and then appending
``data: {"error": ...}`` would glue the two into one unparseable event. ``EventAligner`` passes
on everything up to the last blank line at once and holds back only the unfinished event after
it; a well-behaved upstream ends each chunk on a boundary, so nothing is held in practice.
"""

from __future__ import annotations

# A blank line ends an event; lines end in LF, CRLF or CR, so these are every way it can look.
_BOUNDARIES = (b"\n\n", b"\r\r", b"\r\n\r\n", b"\n\r\n", b"\r\n\n")
# An "event" this long without a blank line is not SSE framing we can keep: pass it on.
_MAX_HELD = 256 * 1024


class EventAligner:
    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        """Bytes that are safe to send now: whole events only."""
        data = self._held + chunk if self._held else chunk
        end = _last_boundary_end(data)
        if end == len(data):
            self._held = b""
            return data
        if len(data) - end > _MAX_HELD:
            self._held = b""
            return data
        self._held = data[end:]
        return data[:end]

    def flush(self) -> bytes:
        """At a clean end of stream: whatever was held, as the upstream sent it."""
        held, self._held = self._held, b""
        return held

    def drop(self) -> int:
        """After a failure: forget the unfinished event; returns how many bytes were dropped."""
        held, self._held = self._held, b""
        return len(held)

    @property
    def at_boundary(self) -> bool:
        return not self._held


def _last_boundary_end(data: bytes) -> int:
    best = 0
    for mark in _BOUNDARIES:
        at = data.rfind(mark)
        if at >= 0:
            best = max(best, at + len(mark))
    return best
