"""CPython's cyclic garbage collector, set for ``edgerelay serve``: a process serving many
requests at once.

Requests free what they allocate by reference counting; the cyclic collector only finds the
few cycles they leave. With CPython's default threshold (700 net allocations) it ran a
young-generation pass every ~14 requests at 32 concurrent requests, each pass walking every
object of the requests still in flight (their coroutines, timers, contexts) only to promote
them: 20 to 40 µs of CPU per request, a tenth of the server's or more (bench/gc_bench.py).
A threshold of 10 000 lets the in-flight objects come and go between passes; cycles are still
collected, later. What exists once the process is ready (modules, the app, its configuration)
is frozen out of the collector, so a full pass no longer walks it. ``EDGERELAY_GC=default`` keeps
CPython's own settings.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping

from edgerelay.core.config import ConfigError

YOUNG_THRESHOLD = 10_000


def wanted(env: Mapping[str, str]) -> bool:
    """``EDGERELAY_GC``: ``tuned`` (the default) or ``default`` (CPython's own settings)."""
    value = (env.get("EDGERELAY_GC") or "tuned").strip().lower()
    if value not in ("tuned", "default"):
        raise ConfigError("EDGERELAY_GC", "must be tuned or default")
    return value == "tuned"


def tune_for_serving() -> None:
    """Freeze what exists now and raise the young generation's threshold (never lower it).
    Call once, when the process is ready to serve."""
    gc.freeze()
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), older, oldest)
