"""The one small interface every counter store implements, and the in-memory store.

Three operations, each atomic on its own:

- ``admit``: read the buckets of every counter and the open slots of every slot set; if every
  counter has room for its amount and every slot set has a free slot, add the amounts and take
  the slots; otherwise change nothing. One call is one round trip (one Lua script in Redis, one
  Durable Object request per client key).
- ``adjust``: add a (possibly negative) delta to buckets — a reservation settled to what was used.
- ``release``: give slots back. Slots also expire on their own, so a crashed instance's streams
  stop counting after their lifetime.
- ``settle`` (optional): ``adjust`` and ``release`` in one call, once an answer is over (one
  round trip to Redis instead of two).

The answer of ``admit`` is also "the read for the headers": it carries what the store saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from .windows import Counter, weighted


class Slot(NamedTuple):
    """One concurrency slot (an open stream) in the slot set of a client key."""

    key: str
    limit: int
    slot_id: str
    expires_at: float  # a crashed instance never releases: the slot stops counting then

    @property
    def set_id(self) -> str:
        return f"{self.key}|concurrent_streams"


class StoreAnswer(NamedTuple):
    admitted: bool
    counts: tuple[tuple[float, ...], ...]  # per counter: its buckets' values before adding
    open_slots: tuple[int, ...] = ()  # per slot: live slots before taking one
    # Per counter, ``weighted(counter, counts)`` when the store summed it already (else empty).
    used: tuple[float, ...] = ()


class Adjustment(NamedTuple):
    bucket_id: str
    delta: int
    expires_at: float


class StoreUnavailable(Exception):
    """The store could not be reached or answered nonsense; the limiter fails closed (or open
    when configured)."""


class LimitStore(Protocol):
    async def admit(
        self, counters: Sequence[Counter], slots: Sequence[Slot], now: float
    ) -> StoreAnswer: ...

    async def adjust(self, adjustments: Sequence[Adjustment], now: float) -> None: ...

    async def release(self, slots: Sequence[Slot]) -> None: ...


def fits(counters: Sequence[Counter], counts: Sequence[Sequence[float]]) -> bool:
    """The admission rule every store applies: each counter has room for its amount."""
    return all(
        weighted(counter, tuple(values)) + counter.amount <= counter.limit
        for counter, values in zip(counters, counts, strict=True)
    )


class Cells(Protocol):
    """Where one store keeps its numbers: bucket values with an expiry, and slot sets. The
    admission rule below runs over any of them (a dict here, SQL in a Durable Object), inside
    whatever makes it atomic there."""

    def value(self, bucket_id: str, now: float) -> float: ...

    def put(self, bucket_id: str, value: float, expires_at: float) -> None: ...

    def open_slots(self, set_id: str, now: float) -> int: ...

    def take_slot(self, set_id: str, slot_id: str, expires_at: float) -> None: ...

    def give_slot(self, set_id: str, slot_id: str) -> None: ...


def admit_on(cells: Cells, counters: Sequence[Counter], slots: Sequence[Slot], now: float):
    """The admission every store makes: check all, then change all or nothing."""
    counts = tuple(tuple(cells.value(c.bucket_id(b), now) for b, _ in c.buckets) for c in counters)
    open_slots = tuple(cells.open_slots(s.set_id, now) for s in slots)
    admitted = fits(counters, counts) and all(
        n < s.limit for n, s in zip(open_slots, slots, strict=True)
    )
    if admitted:
        for c in counters:
            if c.amount:
                bucket = c.bucket_id(c.buckets[0][0])
                cells.put(bucket, cells.value(bucket, now) + c.amount, c.expires_at)
        for s in slots:
            cells.take_slot(s.set_id, s.slot_id, s.expires_at)
    return StoreAnswer(admitted, counts, open_slots)


def adjust_on(cells: Cells, adjustments: Sequence[Adjustment], now: float) -> None:
    for a in adjustments:
        cells.put(a.bucket_id, max(0.0, cells.value(a.bucket_id, now) + a.delta), a.expires_at)


def release_on(cells: Cells, slots: Sequence[Slot]) -> None:
    for s in slots:
        cells.give_slot(s.set_id, s.slot_id)


class DictCells:
    """Cells in a dict; expired entries are swept as the clock moves on."""

    def __init__(self, sweep_every: int = 1024) -> None:
        self._values: dict[str, tuple[float, float]] = {}  # bucket id -> (value, expires_at)
        self._slots: dict[str, dict[str, float]] = {}  # set id -> {slot id: expires_at}
        self._sweep_every = sweep_every
        self._ops = 0

    def value(self, bucket_id: str, now: float) -> float:
        entry = self._values.get(bucket_id)
        if entry is None or entry[1] <= now:
            return 0.0
        return entry[0]

    def put(self, bucket_id: str, value: float, expires_at: float) -> None:
        self._values[bucket_id] = (value, expires_at)

    def _live(self, set_id: str, now: float) -> dict[str, float]:
        slots = self._slots.get(set_id)
        if slots is None:
            return {}
        for slot_id in [s for s, until in slots.items() if until <= now]:
            del slots[slot_id]
        return slots

    def open_slots(self, set_id: str, now: float) -> int:
        return len(self._live(set_id, now))

    def take_slot(self, set_id: str, slot_id: str, expires_at: float) -> None:
        self._slots.setdefault(set_id, {})[slot_id] = expires_at

    def give_slot(self, set_id: str, slot_id: str) -> None:
        live = self._slots.get(set_id)
        if live is not None:
            live.pop(slot_id, None)
            if not live:
                del self._slots[set_id]

    def sweep(self, now: float) -> None:
        self._ops += 1
        if self._ops % self._sweep_every:
            return
        for bucket in [b for b, (_, until) in self._values.items() if until <= now]:
            del self._values[bucket]
        for set_id in list(self._slots):
            if not self._live(set_id, now):
                del self._slots[set_id]

    def __len__(self) -> int:
        return len(self._values) + sum(len(s) for s in self._slots.values())


class MemoryStore:
    """Counters in this process's memory: exact for one process (the local server's default),
    per instance on serverless targets. Expired entries are swept as the clock moves on, so
    memory stays bounded by the keys active in the last windows."""

    def __init__(self, sweep_every: int = 1024) -> None:
        self.cells = DictCells(sweep_every)

    async def admit(
        self, counters: Sequence[Counter], slots: Sequence[Slot], now: float
    ) -> StoreAnswer:
        """``admit_on`` the dict, written out: it runs for every admitted request."""
        cells = self.cells
        cells.sweep(now)
        get = cells._values.get
        counts: list[tuple[float, ...]] = []
        sums: list[float] = []
        current: list[str] = []  # each counter's current bucket id, added to when admitted
        admitted = True
        for key, name, limit, amount, buckets, _ in counters:
            # As ``weighted`` sums: 0 + w * v in bucket order, the same float as every store.
            bucket, weight = buckets[0]
            bucket_id = f"{key}|{name}|{bucket}"
            entry = get(bucket_id)
            value = entry[0] if entry is not None and entry[1] > now else 0.0
            used = 0.0 + weight * value
            seen: tuple[float, ...] = (value,)
            for bucket, weight in buckets[1:]:
                entry = get(f"{key}|{name}|{bucket}")
                value = entry[0] if entry is not None and entry[1] > now else 0.0
                seen += (value,)
                used += weight * value
            if used + amount > limit:
                admitted = False
            counts.append(seen)
            sums.append(used)
            current.append(bucket_id)
        open_slots = tuple(cells.open_slots(s.set_id, now) for s in slots) if slots else ()
        if admitted and slots:
            admitted = all(n < s.limit for n, s in zip(open_slots, slots, strict=True))
        if admitted:
            values = cells._values
            for c, bucket_id, seen in zip(counters, current, counts, strict=True):
                if c.amount:
                    values[bucket_id] = (seen[0] + c.amount, c.expires_at)
            for s in slots:
                cells.take_slot(s.set_id, s.slot_id, s.expires_at)
        return StoreAnswer._make((admitted, tuple(counts), open_slots, tuple(sums)))

    async def adjust(self, adjustments: Sequence[Adjustment], now: float) -> None:
        adjust_on(self.cells, adjustments, now)

    async def release(self, slots: Sequence[Slot]) -> None:
        release_on(self.cells, slots)

    async def settle(
        self, adjustments: Sequence[Adjustment], slots: Sequence[Slot], now: float
    ) -> None:
        adjust_on(self.cells, adjustments, now)
        release_on(self.cells, slots)

    def __len__(self) -> int:
        """Entries held (for tests of the sweep)."""
        return len(self.cells)
