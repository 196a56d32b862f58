"""CPython's cyclic garbage collector, set for ``edgerelay serve``: a process serving many
requests at once.

Requests free what they allocate by reference counting; the cyclic collector only finds the
few cycles they leave. With CPython's default threshold (700 net allocations) it ran a
young-generation pass every ~14 requests at 32 concurrent requests, each pass walking every
object of the requests still in flight (their coroutines, timers, contexts) only to promote
them: tens of µs of CPU per request (bench/gc_bench.py). A threshold of 10 000 lets the
in-flight objects come and go between passes; cycles are still collected, later. Once the
process is ready (the app built, the HTTP client library imported), what exists is frozen out
of the collector, so a full pass no longer walks it. ``EDGERELAY_GC=cpython`` keeps CPython's
own settings.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping

from edgerelay.core.config import ConfigError

YOUNG_THRESHOLD = 10_000


def wanted(env: Mapping[str, str]) -> bool:
    """``EDGERELAY_GC``: ``tuned`` (the default) or ``cpython`` (CPython's own settings)."""
    value = (env.get("EDGERELAY_GC") or "tuned").strip().lower()
    if value not in ("tuned", "cpython"):
        raise ConfigError("EDGERELAY_GC", "must be tuned or cpython")
    return value == "tuned"


def raise_threshold() -> None:
    """The young generation's threshold up to ``YOUNG_THRESHOLD`` (never lowered)."""
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), older, oldest)


def freeze_start_up() -> None:
    """Collect what start-up left in cycles (~600 objects, one pass of ~10 ms here), then
    freeze the rest out of the collector. Call once, when the process is ready to serve (the
    app built, its libraries imported)."""
    gc.collect()
    gc.freeze()
