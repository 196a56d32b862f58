"""Recording one stream for the cache (a chat stream, unless told how to read another API's),
bounded in bytes.

What is never stored: an answer that errored (an error event, an upstream error), was cut
(the gateway ended it, or the upstream broke off or ended without ``[DONE]``), was abandoned
(every client left before the end), or passed ``max_entry_bytes`` (recording stops there and
drops what it held; the clients still get the whole answer).
"""

from __future__ import annotations

from collections.abc import Callable

from .. import safejson
from ..observer import Reason
from .entry import Entry, assembled

# What an entry holds for a recorded stream of another API than chat: its batches as served,
# a second stream form (or none) and the JSON answer; None when it is not a whole answer.
Forms = Callable[[tuple[bytes, ...]], "tuple[tuple[bytes, ...], tuple[bytes, ...], bytes] | None"]


class Recording:
    """``feed(batch)`` with the events as they go out; ``entry(...)`` once the stream is over.
    ``forms``: how a stream of another API becomes an entry (default: a chat stream)."""

    __slots__ = ("_events", "_forms", "max_bytes", "over", "size")

    def __init__(self, max_bytes: int, forms: Forms | None = None) -> None:
        self.max_bytes = max_bytes
        self._forms = forms
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
        if self._forms is not None:
            made = self._forms(tuple(self._events))
            if made is None:
                return None
            return Entry(key, namespace, now, now + ttl, *made)
        answer = assembled(self._events)  # one parse: the check and the JSON form
        if answer is None:
            return None
        completion = safejson.dumps(answer.completion())
        return Entry.of(key, namespace, now, now + ttl, tuple(self._events), completion)
