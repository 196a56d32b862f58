"""Which stores a process uses, from ``EDGERELAY_STORE``: ``memory`` (the local server's
default: one process), or ``redis://…`` / ``rediss://…`` (shared by every process and instance)
— for the limits' counters (only built when some policy sets a limit: without limits no store is
needed anywhere) and for stored ``/v1/responses`` answers. redis-py is imported only then."""

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
        require_redis()
        from edgerelay.stores.redis_store import RedisStore

        return RedisStore.from_url(setting, timeout=config.store_timeout)
    raise ConfigError("EDGERELAY_STORE", "must be memory, redis://… or rediss://…")


def response_store_for(config: Config, env: Mapping[str, str]):
    """The store ``EDGERELAY_STORE`` names for stored responses: Redis for ``redis://``,
    ``rediss://`` or ``unix://``; None (the gateway's own memory store) when unset or
    ``memory``. Anything else raises ``ConfigError`` naming the setting (never its value)."""
    setting = (env.get("EDGERELAY_STORE") or "").strip()
    if setting in ("", "memory"):
        return None
    if setting.startswith(("redis://", "rediss://", "unix://")):
        require_redis()
        from edgerelay.stores.responses_redis import RedisResponseStore

        return RedisResponseStore.from_url(
            setting, max_value_bytes=config.responses_max_bytes, timeout=config.store_timeout
        )
    raise ConfigError("EDGERELAY_STORE", "must be memory, redis://… or rediss://…")


def require_redis() -> None:
    """A clear configuration error, not a traceback, when ``EDGERELAY_STORE`` names Redis but
    redis-py is not installed (it is an extra of the package: ``edgerelay[redis]``)."""
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        raise ConfigError(
            "EDGERELAY_STORE", "redis:// needs redis-py: pip install 'edgerelay[redis]'"
        ) from None
