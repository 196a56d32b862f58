"""Which counter store a process uses, from ``EDGERELAY_STORE``: ``memory`` (the local server's
default: one process), or ``redis://…`` / ``rediss://…`` (shared by every process and instance).
Only built when some policy sets a limit: without limits no store is needed anywhere."""

from __future__ import annotations

from collections.abc import Mapping

from edgerelay.core import Config, ConfigError


def store_for(config: Config, env: Mapping[str, str], *, memory_ok: bool):
    """The store, or None when none is configured (the gateway then answers 503 naming what to
    set, unless EDGERELAY_STORE_FAIL_OPEN=true). ``memory_ok``: false on Lambda, where memory
    would be per instance and bound nothing."""
    if config.limits is None:
        return None
    setting = (env.get("EDGERELAY_STORE") or "").strip()
    if not setting:
        setting = "memory" if memory_ok else ""
    if not setting:
        return None
    if setting == "memory":
        if not memory_ok:
            raise ConfigError(
                "EDGERELAY_STORE", "memory is per instance on Lambda; use redis:// or rediss://"
            )
        from edgerelay.core.limits import MemoryStore

        return MemoryStore()
    if setting.startswith(("redis://", "rediss://", "unix://")):
        from edgerelay.stores.redis_store import RedisStore

        return RedisStore.from_url(setting, timeout=config.store_timeout)
    raise ConfigError("EDGERELAY_STORE", "must be memory, redis://… or rediss://…")
