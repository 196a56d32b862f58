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
    url = redis_url(env)
    if url is not None:
        from edgerelay.stores.redis_store import RedisStore

        return RedisStore.from_url(url, timeout=config.store_timeout)
    if not memory_ok:
        if (env.get("EDGERELAY_STORE") or "").strip() == "memory":
            raise ConfigError(
                "EDGERELAY_STORE", "memory is per instance on Lambda; use redis:// or rediss://"
            )
        return None
    from edgerelay.core.limits import MemoryStore

    return MemoryStore()


def response_store_for(config: Config, env: Mapping[str, str]):
    """The store ``EDGERELAY_STORE`` names for stored responses: Redis for ``redis://``,
    ``rediss://`` or ``unix://``; None (the gateway's own memory store) when unset or
    ``memory``."""
    url = redis_url(env)
    if url is None:
        return None
    from edgerelay.stores.responses_redis import RedisResponseStore

    return RedisResponseStore.from_url(
        url, max_value_bytes=config.responses_max_bytes, timeout=config.store_timeout
    )


def redis_url(env: Mapping[str, str]) -> str | None:
    """``EDGERELAY_STORE`` when it names Redis (``redis://``, ``rediss://``, ``unix://``), None
    when it is unset or ``memory``. Anything else raises ``ConfigError`` naming the setting
    (never its value), as does a Redis URL without redis-py installed."""
    setting = (env.get("EDGERELAY_STORE") or "").strip()
    if setting in ("", "memory"):
        return None
    if setting.startswith(("redis://", "rediss://", "unix://")):
        require_redis()
        return setting
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
