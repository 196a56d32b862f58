"""One cached answer: the chat stream as it came (its events, in the batches they arrived in),
and the two ways it is served again.

The upstream is always asked for a stream with usage (``stream_options.include_usage``), so
one entry serves every client of the same request:

- as SSE, batch by batch, so the text keeps its original split and a streaming UI still
  renders progressively; ``[DONE]`` included; the usage chunk and the ``"usage": null``
  members only for a client that asked for usage itself;
- as a ``chat.completion`` JSON answer assembled from the chunks (with its usage).

Entries travel to shared stores as bytes (``encode`` / ``decode``): one line of JSON for the
metadata, then the events' raw bytes, so nothing is re-encoded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import NamedTuple

from .. import safejson
from ..limits.stream_usage import IncludeUsageStripper, UsageMeter
from ..sse import SSEParser
from .assemble import Assembler

_MAGIC = b"edgerelay-cache-1\n"


class Entry(NamedTuple):
    """One stored answer, held the three ways it is served (computed once, when stored, so a
    hit only copies bytes): ``events`` as recorded (for a client that asked for usage),
    ``plain`` without what asking for usage added, and ``answer``, the JSON completion."""

    key: str
    namespace: str
    created: float  # when the answer was stored (the ``age`` header counts from here)
    expires: float
    events: tuple[bytes, ...]  # the SSE batches as they came, [DONE] last
    plain: tuple[bytes, ...]
    answer: bytes

    @classmethod
    def of(
        cls,
        key: str,
        namespace: str,
        created: float,
        expires: float,
        events: tuple[bytes, ...],
        answer: bytes | None = None,
    ) -> Entry:
        """The entry for a recorded stream (``answer``: its JSON, when already assembled)."""
        if answer is None:
            answer = json_answer(events)
        return cls(key, namespace, created, expires, events, _plain(events), answer)

    @property
    def size(self) -> int:
        """Bytes this entry holds (what the memory store's bound counts)."""
        held = sum(len(e) for e in self.events) + sum(len(e) for e in self.plain)
        return held + len(self.answer) + len(self.key) + len(self.namespace) + 64

    def age(self, now: float) -> int:
        return max(0, int(now - self.created))

    def live(self, now: float) -> bool:
        return now < self.expires

    def encode(self) -> bytes:
        head = {
            "key": self.key,
            "namespace": self.namespace,
            "created": self.created,
            "expires": self.expires,
            "events": [len(e) for e in self.events],
            "plain": [len(e) for e in self.plain],
            "answer": len(self.answer),
        }
        parts = [*self.events, *self.plain, self.answer]
        return _MAGIC + json.dumps(head, separators=(",", ":")).encode() + b"\n" + b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Entry | None:
        """The entry in ``data``, or None for anything that is not one (a store holding
        something else under the key, or a truncated value): a miss, never an error."""
        if not data.startswith(_MAGIC):
            return None
        head_end = data.find(b"\n", len(_MAGIC))
        try:
            head = json.loads(data[len(_MAGIC) : head_end])
            at = head_end + 1
            sections = []
            for lengths in (head["events"], head["plain"], [head["answer"]]):
                pieces = []
                for length in lengths:
                    pieces.append(data[at : at + int(length)])
                    at += int(length)
                sections.append(tuple(pieces))
            if at != len(data):
                return None
            return cls(
                str(head["key"]),
                str(head["namespace"]),
                float(head["created"]),
                float(head["expires"]),
                sections[0],
                sections[1],
                sections[2][0],
            )
        except (ValueError, KeyError, TypeError, IndexError):
            return None


def _plain(events: tuple[bytes, ...]) -> tuple[bytes, ...]:
    stripper = IncludeUsageStripper(UsageMeter())
    out = [stripper.feed(batch) for batch in events]
    out.append(stripper.finish())
    return tuple(batch for batch in out if batch)


def sse_events(entry: Entry, include_usage: bool) -> tuple[bytes, ...]:
    """The batches to send a streaming client: as recorded for one that asked for usage,
    else without the usage chunk and the ``"usage": null`` members."""
    return entry.events if include_usage else entry.plain


def stream_objects(batches: Iterable[bytes]) -> tuple[list[dict], bool]:
    """The JSON objects of an event stream's events, in order (other data is skipped), and
    whether a ``data: [DONE]`` event came: a chat stream's chunks, a Responses stream's
    events."""
    parser = SSEParser()
    found = [*(e for batch in batches for e in parser.feed(batch)), *parser.finish()]
    objects, done = [], False
    for event in found:
        if event.data == "[DONE]":
            done = True
            continue
        try:
            obj = safejson.loads(event.data)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict):
            objects.append(obj)
    return objects, done


def json_answer(events: tuple[bytes, ...] | list[bytes]) -> bytes:
    """The ``chat.completion`` answer the stream's chunks add up to."""
    assembler = Assembler()
    for chunk in stream_objects(events)[0]:
        assembler.add(chunk)
    return safejson.dumps(assembler.completion())


def assembled(events: tuple[bytes, ...] | list[bytes]) -> Assembler | None:
    """The stream's answer assembled when it is a whole answer worth keeping: ``[DONE]`` came,
    no error event, and every choice has its ``finish_reason`` (``length`` included: the
    answer the request's limit allows is complete); else None. One parse of the stream."""
    chunks, done = stream_objects(events)
    if not done or any("error" in chunk for chunk in chunks):
        return None
    assembler = Assembler()
    for chunk in chunks:
        assembler.add(chunk)
    return assembler if assembler.finished else None


def complete_answer(events: tuple[bytes, ...] | list[bytes]) -> bool:
    """Whether the stream is a whole answer worth keeping (see ``assembled``)."""
    return assembled(events) is not None
