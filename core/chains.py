"""Retry, fallback and timeout settings: global ones from the environment, and per alias from
``EDGERELAY_CONFIG``, where an alias is a model string or a table with a fallback chain::

    [aliases]
    fast = "groq/llama-3.3-70b-versatile"

    [aliases.smart]
    targets = ["anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-pro", "openai/gpt-4.1"]
    retries = 1                 # per target; default EDGERELAY_RETRIES
    fallback_on = [400, 401]    # statuses that move to the next target without a retry
    first_byte_timeout = 120    # and connect_timeout, idle_timeout, total_timeout
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

from .retry import RetryPolicy


class Timeouts(NamedTuple):
    """Seconds. Each one aborts the upstream request when it expires."""

    connect: float = 10.0  # TCP/TLS connect, including the wait for a pooled connection
    first_byte: float = 600.0  # to the response headers (a reasoning answer can take minutes)
    idle: float = 600.0  # between two chunks of the response body; 0: not timed (off)
    total: float = 900.0  # the whole request, every attempt and wait included


class Chain(NamedTuple):
    """What a model name resolves to: targets tried in order, with their settings."""

    targets: tuple[str, ...]
    policy: RetryPolicy
    timeouts: Timeouts


_TIMEOUT_FIELDS = ("connect", "first_byte", "idle", "total")


def load_settings(
    get: Callable[[str], str | None], settings: Mapping
) -> tuple[RetryPolicy, Timeouts, dict[str, Chain], dict[str, str]]:
    """The global policy and timeouts, each alias's chain, and alias -> first target (what
    routing resolves a name to). ``get`` reads a stripped environment variable."""
    from .config import ConfigError, positive_float  # config imports this module

    limits = settings.get("limits", {})
    if not isinstance(limits, dict):
        raise ConfigError("EDGERELAY_CONFIG.limits", "must be a table")
    legacy = get("EDGERELAY_UPSTREAM_TIMEOUT") or limits.get("upstream_timeout")
    values = {}
    for field in _TIMEOUT_FIELDS:
        name = f"EDGERELAY_{field.upper()}_TIMEOUT"
        raw = get(name) or limits.get(f"{field}_timeout")
        if raw is None and field in ("first_byte", "idle"):
            # EDGERELAY_UPSTREAM_TIMEOUT keeps its meaning: headers and gaps between chunks.
            raw, name = legacy, "EDGERELAY_UPSTREAM_TIMEOUT"
        if field == "idle" and name == "EDGERELAY_IDLE_TIMEOUT" and _off(raw):
            values[field] = 0.0  # the operator turned the idle timeout off (Worker: zero copy)
            continue
        values[field] = positive_float(name, raw, getattr(Timeouts(), field))
    timeouts = Timeouts(**values)

    retries = _count("EDGERELAY_RETRIES", get("EDGERELAY_RETRIES"), 2)
    policy = RetryPolicy(
        retries=retries,
        base=positive_float("EDGERELAY_RETRY_BASE", get("EDGERELAY_RETRY_BASE"), 0.5),
        max_backoff=positive_float(
            "EDGERELAY_RETRY_MAX_BACKOFF", get("EDGERELAY_RETRY_MAX_BACKOFF"), 8.0
        ),
        max_wait=positive_float("EDGERELAY_RETRY_MAX_WAIT", get("EDGERELAY_RETRY_MAX_WAIT"), 20.0),
    )

    aliases = settings.get("aliases", {})
    if not isinstance(aliases, dict):
        raise ConfigError("EDGERELAY_CONFIG.aliases", "must map alias names to models or tables")
    chains: dict[str, Chain] = {}
    first: dict[str, str] = {}
    for alias, spec in aliases.items():
        setting = f"EDGERELAY_CONFIG.aliases.{alias}"
        if isinstance(spec, str):
            first[alias] = spec
            continue
        if not isinstance(spec, dict):
            raise ConfigError(setting, "must be a model string or a table with `targets`")
        chain = _chain(setting, spec, policy, timeouts, positive_float)
        chains[alias] = chain
        first[alias] = chain.targets[0]
    return policy, timeouts, chains, first


def _chain(setting, spec: dict, policy: RetryPolicy, timeouts: Timeouts, positive) -> Chain:
    from .config import ConfigError

    unknown = set(spec) - {"targets", "retries", "fallback_on", *_timeout_keys()}
    if unknown:
        raise ConfigError(f"{setting}.{sorted(unknown)[0]}", "is not a known alias setting")
    targets = spec.get("targets")
    if (
        not isinstance(targets, list)
        or not targets
        or not all(isinstance(t, str) and t for t in targets)
    ):
        raise ConfigError(f"{setting}.targets", "must be a non-empty list of model strings")
    retries = policy.retries
    if "retries" in spec:
        retries = _count(f"{setting}.retries", spec["retries"], policy.retries)
    fallback_on = spec.get("fallback_on", [])
    if not isinstance(fallback_on, list) or not all(
        isinstance(s, int) and not isinstance(s, bool) and 400 <= s <= 599 for s in fallback_on
    ):
        raise ConfigError(f"{setting}.fallback_on", "must be a list of HTTP statuses (400-599)")
    values = {
        field: positive(f"{setting}.{field}_timeout", spec.get(f"{field}_timeout"), default)
        for field, default in zip(_TIMEOUT_FIELDS, timeouts, strict=True)
    }
    return Chain(
        tuple(targets),
        policy._replace(retries=retries, fallback_on=frozenset(fallback_on)),
        Timeouts(**values),
    )


def _off(value: object) -> bool:
    """``0`` or ``off``: a timeout turned off (a number above zero is a timeout)."""
    text = str(value).strip().lower() if value is not None else ""
    if text in ("off", "none"):
        return True
    try:
        return float(text) == 0
    except ValueError:
        return False


def _timeout_keys() -> tuple[str, ...]:
    return tuple(f"{field}_timeout" for field in _TIMEOUT_FIELDS)


def _count(setting: str, value: object, default: int) -> int:
    from .config import ConfigError

    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(setting, "must be a whole number (0 or more)")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(setting, "must be a whole number (0 or more)") from None
    if number < 0 or number > 10:
        raise ConfigError(setting, "must be between 0 and 10")
    return number
