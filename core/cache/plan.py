"""Whether, and how, one request uses the cache: read from it, write to it, for how long.

The deployment decides what may be cached (``EDGERELAY_CACHE``, per policy, per alias); a
request can only narrow that: ``x-edgerelay-cache: off`` (bypass), ``refresh`` (skip the
lookup, store the new answer), ``Cache-Control: no-cache`` (skip the lookup), ``no-store``
(skip the write). Under ``opt-in`` a request must say ``x-edgerelay-cache: on`` (or
``refresh``). Only answers with one choice are cached (``n`` absent or 1); the request's
``temperature`` does not matter: the owner chose to cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple

from ..errors import bad_request
from .settings import CacheSettings

Status = Literal["HIT", "MISS", "BYPASS", "REFRESH"]
HEADER = "x-edgerelay-cache"
TTL_HEADER = "x-edgerelay-cache-ttl"


class Plan(NamedTuple):
    """What the cache does for one request. ``status`` is what the answer says when it is not
    served from the cache (``MISS``, ``REFRESH`` or ``BYPASS``)."""

    status: Status
    lookup: bool
    store: bool
    ttl: int

    @property
    def active(self) -> bool:
        return self.lookup or self.store


def plan_request(
    settings: CacheSettings,
    headers: Mapping[str, str],
    body: Mapping,
    policy: str | None,
    model: str,
) -> Plan | None:
    """The plan for a request (``model`` as the client named it: an alias overrides by that
    name); None when no request can be cached in this deployment (no cache header at all).
    A malformed ``x-edgerelay-cache`` or ``x-edgerelay-cache-ttl`` is the client's 400."""
    if not settings.enabled:
        return None
    asked = headers.get(HEADER, "").strip().lower()
    if asked not in ("", "on", "off", "refresh"):
        raise bad_request(f"`{HEADER}` must be on, off or refresh.", param=HEADER)
    ttl = _ttl(settings, headers.get(TTL_HEADER))
    bypass = Plan("BYPASS", False, False, ttl)
    mode = settings.mode_for(policy, model)
    if mode == "off" or asked == "off" or not _one_choice(body):
        return bypass
    if mode == "opt-in" and asked not in ("on", "refresh"):
        return bypass
    directives = _cache_control(headers.get("cache-control", ""))
    lookup = asked != "refresh" and "no-cache" not in directives
    store = "no-store" not in directives
    if not lookup and not store:
        return bypass
    return Plan("MISS" if lookup else "REFRESH", lookup, store, ttl)


def _one_choice(body: Mapping) -> bool:
    n = body.get("n")
    return n is None or (n == 1 and not isinstance(n, bool))


def _cache_control(value: str) -> set[str]:
    return {part.strip().lower().partition("=")[0] for part in value.split(",") if part.strip()}


def _ttl(settings: CacheSettings, value: str | None) -> int:
    if value is None:
        return settings.ttl
    text = value.strip()
    low, high = settings.ttl_min, settings.ttl_max
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise bad_request(
            f"`{TTL_HEADER}` must be a whole number of seconds from {low} to {high}.",
            param=TTL_HEADER,
        )
    return int(text)
