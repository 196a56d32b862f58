"""Rate-limit strategies: fixed and sliding windows, as pure arithmetic over counters.

A strategy never touches storage. It names the buckets a limit reads (with a weight each) and
the bucket an admission adds to; the store sums, compares and adds atomically; the strategy then
turns what the store saw into a retry-after and a reset time. So the same strategies run against
a dict, a Lua script in Redis or a Durable Object's SQL.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

WindowKind = Literal["fixed", "sliding"]


class Counter(NamedTuple):
    """One limit on one client key, as handed to a store.

    The store computes ``used = sum(weight * value(bucket))`` over ``buckets``; when every
    counter of an admission has ``used + amount <= limit`` it adds ``amount`` to the first bucket
    (keeping it until ``expires_at``), else it changes nothing.
    """

    key: str  # the client key, e.g. "jwt:alice" or "ip:203.0.113.7"
    name: str  # the limit, e.g. "requests_per_minute"
    limit: int
    amount: int
    buckets: tuple[tuple[int, float], ...]  # (bucket number, weight); the first is the current
    expires_at: float  # when the current bucket may be forgotten (seconds, same clock as now)

    def bucket_id(self, bucket: int) -> str:
        """The storage name of one bucket of this counter."""
        return f"{self.key}|{self.name}|{bucket}"


class Window(NamedTuple):
    """A window of ``seconds``, fixed (counts reset at each boundary) or sliding (the previous
    window's count is weighted by how much of it still overlaps the last ``seconds``)."""

    seconds: int
    kind: WindowKind = "sliding"

    def frame(self, now: float) -> tuple[tuple[tuple[int, float], ...], int]:
        """The buckets a counter of this window reads at ``now`` (with their weights) and when
        its current bucket may be forgotten: the same for every counter of the window, so an
        admission works them out once."""
        current = math.floor(now / self.seconds)
        if self.kind == "fixed":
            return ((current, 1.0),), (current + 1) * self.seconds
        elapsed = now / self.seconds - current  # fraction of the current window gone by
        # The current bucket still counts (weighted) through the whole next window.
        return ((current, 1.0), (current - 1, 1.0 - elapsed)), (current + 2) * self.seconds

    def retry_after(self, counter: Counter, counts: tuple[float, ...], now: float) -> float:
        """Seconds until ``counter.amount`` more would fit, given the bucket values the store
        saw (same order as ``counter.buckets``). Never more than two windows."""
        limit, amount = counter.limit, counter.amount
        current = counter.buckets[0][0]
        window_end = (current + 1) * self.seconds
        if self.kind == "fixed" or amount > limit:
            return max(0.0, window_end - now)
        this, previous = counts[0], counts[1] if len(counts) > 1 else 0.0
        room = limit - amount
        if this > room:
            # Wait for the window to roll; then this bucket decays as the previous one.
            fraction = 1.0 - room / this if this else 1.0
            return max(0.0, window_end - now) + self.seconds * fraction
        if previous <= 0:
            return 0.0
        # The previous bucket's weight w = 1 - elapsed must fall to (room - this) / previous.
        needed = 1.0 - (room - this) / previous
        start = current * self.seconds
        return max(0.0, start + self.seconds * needed - now)

    def reset_after(self, counter: Counter, counts: tuple[float, ...], now: float) -> float:
        """Seconds until the limit is whole again (what ``x-ratelimit-reset-*`` tells)."""
        window_end = (counter.buckets[0][0] + 1) * self.seconds
        left = max(0.0, window_end - now)
        if self.kind == "sliding" and counts and counts[0] > 0:
            left += self.seconds
        return left


def weighted(counter: Counter, counts: tuple[float, ...]) -> float:
    """What the store computes: the weighted sum of the buckets' values (0 + w * v, in bucket
    order, the same float as the stores' own sums)."""
    used = 0.0
    for (_, weight), value in zip(counter.buckets, counts, strict=False):
        used += weight * value
    return used
