"""The response cache: exact match on the request, for JSON and streamed answers alike.

Sans-IO like the rest of core: what may be cached and how (``plan``), the key (``keys``), the
recording of a stream and its replays (``record``, ``entry``, ``assemble``), one upstream call
per key (``flight``), the async store interface with the in-memory store (``store``), the
gateway's use of all of it (``layer``) and the admin routes (``admin``). Redis and Workers KV
stores live with their targets.

The package's names are imported on first use (``__getattr__``): the configuration reads
``settings`` for every start, and the rest loads only where the cache is on.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .admin import handle_admin, is_admin_path
    from .entry import Entry, json_answer, sse_events
    from .flight import Flight, FlightReader
    from .keys import IGNORED_FIELDS, cache_key, canonical, namespace_for
    from .layer import KEY_HEADER, ResponseCache, replay, streamed
    from .plan import HEADER, TTL_HEADER, Plan, plan_request
    from .record import Recording
    from .settings import CacheSettings, PolicyCache, load_cache_settings
    from .store import ALL, CacheStore, CacheUnavailable, MemoryCacheStore, stats_answer

# Where each public name lives.
_HOMES = {
    "ALL": ".store",
    "CacheSettings": ".settings",
    "CacheStore": ".store",
    "CacheUnavailable": ".store",
    "Entry": ".entry",
    "Flight": ".flight",
    "FlightReader": ".flight",
    "HEADER": ".plan",
    "IGNORED_FIELDS": ".keys",
    "KEY_HEADER": ".layer",
    "MemoryCacheStore": ".store",
    "Plan": ".plan",
    "PolicyCache": ".settings",
    "Recording": ".record",
    "ResponseCache": ".layer",
    "TTL_HEADER": ".plan",
    "cache_key": ".keys",
    "canonical": ".keys",
    "handle_admin": ".admin",
    "is_admin_path": ".admin",
    "json_answer": ".entry",
    "load_cache_settings": ".settings",
    "namespace_for": ".keys",
    "plan_request": ".plan",
    "replay": ".layer",
    "sse_events": ".entry",
    "stats_answer": ".store",
    "streamed": ".layer",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value  # found directly from now on
    return value


__all__ = [
    "ALL",
    "HEADER",
    "IGNORED_FIELDS",
    "KEY_HEADER",
    "TTL_HEADER",
    "CacheSettings",
    "CacheStore",
    "CacheUnavailable",
    "Entry",
    "Flight",
    "FlightReader",
    "MemoryCacheStore",
    "Plan",
    "PolicyCache",
    "Recording",
    "ResponseCache",
    "cache_key",
    "canonical",
    "handle_admin",
    "is_admin_path",
    "json_answer",
    "load_cache_settings",
    "namespace_for",
    "plan_request",
    "replay",
    "sse_events",
    "stats_answer",
    "streamed",
]
