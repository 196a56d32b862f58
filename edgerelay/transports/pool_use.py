"""How many of a pool's connections are in use: what ``GET /readyz`` reports on.

A transport leases one slot per upstream request, from the call until its response is closed
(a stream holds its connection that long). Counting here, rather than asking the HTTP client,
keeps it the same for aiohttp and httpx and off their private attributes."""

from __future__ import annotations


class PoolUse:
    __slots__ = ("in_use", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0

    @property
    def saturated(self) -> bool:
        return self.in_use >= self.size

    def lease(self) -> Lease:
        self.in_use += 1
        return Lease(self)


class Lease:
    """One request's slot; ``end()`` may be called more than once (error paths overlap)."""

    __slots__ = ("_use",)

    def __init__(self, use: PoolUse) -> None:
        self._use: PoolUse | None = use

    def end(self) -> None:
        if self._use is not None:
            self._use.in_use -= 1
            self._use = None
