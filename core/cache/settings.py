"""The response cache's settings: ``EDGERELAY_CACHE*`` variables and the ``[cache]`` table of
``EDGERELAY_CONFIG``.

::

    [cache]
    mode = "opt-in"              # off | opt-in | on (EDGERELAY_CACHE wins when set)
    ttl = 3600                   # EDGERELAY_CACHE_TTL; per request x-edgerelay-cache-ttl ...
    ttl_min = 60                 # ... within EDGERELAY_CACHE_TTL_MIN ...
    ttl_max = 86400              # ... and EDGERELAY_CACHE_TTL_MAX
    max_bytes = 67108864         # EDGERELAY_CACHE_MAX_BYTES: the in-memory store's bound
    max_entry_bytes = 1048576    # EDGERELAY_CACHE_MAX_ENTRY_BYTES: the most one answer records

    [cache.policies.anonymous]   # per policy: its mode, and whether its clients share entries
    mode = "on"
    shared = true                # default: true for `anonymous`, false for every other policy

    [cache.aliases]              # per alias (the model as the client names it): its mode
    fast = "off"
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, NamedTuple

from ..config import ConfigError, positive_int

Mode = Literal["off", "opt-in", "on"]
MODES: tuple[Mode, ...] = ("off", "opt-in", "on")
ANONYMOUS = "anonymous"


class PolicyCache(NamedTuple):
    """One policy's cache overrides: ``mode`` (None: the global one) and ``shared`` (its
    clients read one another's entries; None: only ``anonymous`` does)."""

    mode: Mode | None = None
    shared: bool | None = None


class CacheSettings(NamedTuple):
    """Everything the cache reads from the configuration."""

    mode: Mode = "off"
    ttl: int = 3600
    ttl_min: int = 60
    ttl_max: int = 86400
    max_bytes: int = 64 * 1024 * 1024
    max_entry_bytes: int = 1024 * 1024
    policies: Mapping[str, PolicyCache] = {}
    aliases: Mapping[str, Mode] = {}
    # EDGERELAY_ADMIN_KEY: opens GET /v1/cache/stats and the DELETE routes (404 without it).
    admin_key: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether any request can be cached at all (else the gateway adds no cache header)."""
        return (
            self.mode != "off"
            or any(p.mode not in (None, "off") for p in self.policies.values())
            or any(m != "off" for m in self.aliases.values())
        )

    def mode_for(self, policy: str | None, alias: str | None) -> Mode:
        """The mode for a request: the alias's override, else its policy's, else the global."""
        if alias is not None and alias in self.aliases:
            return self.aliases[alias]
        override = self.policies.get(policy) if policy is not None else None
        if override is not None and override.mode is not None:
            return override.mode
        return self.mode

    def shared(self, policy: str | None) -> bool:
        """Whether clients of ``policy`` share one namespace."""
        override = self.policies.get(policy) if policy is not None else None
        if override is not None and override.shared is not None:
            return override.shared
        return policy == ANONYMOUS

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.admin_key,) if self.admin_key else ()


def load_cache_settings(get: Callable[[str], str | None], settings: Mapping) -> CacheSettings:
    """From the environment (``get``) and the parsed ``EDGERELAY_CONFIG`` document; raises
    ``ConfigError`` naming a bad setting (never quoting its value)."""
    table = settings.get("cache", {})
    if not isinstance(table, dict):
        raise ConfigError("EDGERELAY_CONFIG.cache", "must be a table")
    known = {"mode", "ttl", "ttl_min", "ttl_max", "max_bytes", "max_entry_bytes"}
    unknown = set(table) - known - {"policies", "aliases"}
    if unknown:
        raise ConfigError("EDGERELAY_CONFIG.cache", f"unknown key {sorted(unknown)[0]!r}")
    mode = _mode("EDGERELAY_CACHE", get("EDGERELAY_CACHE") or table.get("mode") or "off")

    def number(env: str, key: str, default: int) -> int:
        return positive_int(env, get(env) or table.get(key), default)

    ttl_min = number("EDGERELAY_CACHE_TTL_MIN", "ttl_min", 60)
    ttl_max = number("EDGERELAY_CACHE_TTL_MAX", "ttl_max", 86400)
    if ttl_min > ttl_max:
        raise ConfigError("EDGERELAY_CACHE_TTL_MIN", "must not be larger than the TTL maximum")
    ttl = number("EDGERELAY_CACHE_TTL", "ttl", 3600)
    if not ttl_min <= ttl <= ttl_max:
        raise ConfigError("EDGERELAY_CACHE_TTL", "must lie between the TTL minimum and maximum")
    return CacheSettings(
        mode,
        ttl,
        ttl_min,
        ttl_max,
        number("EDGERELAY_CACHE_MAX_BYTES", "max_bytes", 64 * 1024 * 1024),
        number("EDGERELAY_CACHE_MAX_ENTRY_BYTES", "max_entry_bytes", 1024 * 1024),
        _policies(table.get("policies", {})),
        _aliases(table.get("aliases", {})),
        get("EDGERELAY_ADMIN_KEY"),
    )


def _mode(setting: str, value: object) -> Mode:
    if value not in MODES:
        raise ConfigError(setting, "must be off, opt-in or on")
    return value


def _policies(tables: object) -> dict[str, PolicyCache]:
    if not isinstance(tables, dict):
        raise ConfigError("EDGERELAY_CONFIG.cache.policies", "must be a table of policies")
    out = {}
    for name, spec in tables.items():
        where = f"EDGERELAY_CONFIG.cache.policies.{name}"
        if not isinstance(spec, dict):
            raise ConfigError(where, "must be a table")
        unknown = set(spec) - {"mode", "shared"}
        if unknown:
            raise ConfigError(where, f"unknown key {sorted(unknown)[0]!r}")
        mode = _mode(f"{where}.mode", spec["mode"]) if "mode" in spec else None
        shared = spec.get("shared")
        if shared is not None and not isinstance(shared, bool):
            raise ConfigError(f"{where}.shared", "must be true or false")
        out[name] = PolicyCache(mode, shared)
    return out


def _aliases(table: object) -> dict[str, Mode]:
    if not isinstance(table, dict):
        raise ConfigError("EDGERELAY_CONFIG.cache.aliases", "must map alias names to a mode")
    return {
        name: _mode(f"EDGERELAY_CONFIG.cache.aliases.{name}", mode) for name, mode in table.items()
    }
