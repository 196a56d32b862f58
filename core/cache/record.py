"""Recording one chat stream for the cache, bounded in bytes.

What is never stored: an answer that errored (an error event, an upstream error), was cut
(the gateway ended it, or the upstream broke off or ended without ``[DONE]``), was abandoned
(every client left before the end), or passed ``max_entry_bytes`` (recording stops there and
drops what it held; the clients still get the whole answer).
"""

from __future__ import annotations

from .. import safejson
from ..observer import Reason
from .entry import Entry, assembled


class Recording:
    """``feed(batch)`` with the events as they go out; ``entry(...)`` once the stream is over."""

    __slots__ = ("_events", "max_bytes", "over", "size")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._events: list[bytes] = []
        self.size = 0
        self.over = False  # passed the bound: nothing will be stored

    def feed(self, batch: bytes) -> None:
        if self.over:
            return
        self.size += len(batch)
        if self.size > self.max_bytes:
            self.over = True
            self._events = []
            return
        self._events.append(batch)

    def entry(
        self, key: str, namespace: str, now: float, ttl: float, ended: Reason | None
    ) -> Entry | None:
        """The entry to store, or None when the answer is not one to keep (see the module)."""
        if self.over or ended != "complete":
            return None
        answer = assembled(self._events)  # one parse: the check and the JSON form
        if answer is None:
            return None
        completion = safejson.dumps(answer.completion())
        return Entry.of(key, namespace, now, now + ttl, tuple(self._events), completion)
