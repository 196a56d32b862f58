"""The limit keys of ``[policies.<name>]`` in EDGERELAY_CONFIG, and the price table.

```toml
[policies.anonymous]
requests_per_minute = 20
concurrent_streams = 2
tokens_per_minute = 20000
tokens_per_day = 200000
budget_usd_per_day = 0.50
limit_window = "sliding"        # or "fixed" (per-minute limits; day limits reset at 00:00 UTC)

[prices."gpt-4.1-mini"]         # USD per million tokens; "*" patterns allowed
input = 0.40
output = 1.60
```
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import NamedTuple

from ..config import ConfigError

LIMIT_KEYS = (
    "requests_per_minute",
    "concurrent_streams",
    "tokens_per_minute",
    "tokens_per_day",
    "budget_usd_per_day",
)
# Default reservation for a request that names no max_tokens and whose policy has no default.
DEFAULT_RESERVE_TOKENS = 4096
# How long an open stream's slot counts if its instance dies without releasing it.
DEFAULT_SLOT_SECONDS = 900.0


class LimitPolicy(NamedTuple):
    requests_per_minute: int | None = None
    concurrent_streams: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    budget_usd_per_day: float | None = None
    window: str = "sliding"
    reserve_tokens: int = DEFAULT_RESERVE_TOKENS  # the policy's default_max_tokens when set

    @property
    def limited(self) -> bool:
        return any(getattr(self, k) is not None for k in LIMIT_KEYS)

    @property
    def counts_tokens(self) -> bool:
        return (
            self.tokens_per_minute is not None
            or self.tokens_per_day is not None
            or self.budget_usd_per_day is not None
        )


class Price(NamedTuple):
    input: float  # USD per million input tokens
    output: float  # USD per million output tokens


class LimitSettings(NamedTuple):
    policies: Mapping[str, LimitPolicy] = {}
    prices: Mapping[str, Price] = {}
    slot_seconds: float = DEFAULT_SLOT_SECONDS

    @property
    def enabled(self) -> bool:
        """Whether any policy sets a limit (only then is a store needed)."""
        return any(p.limited for p in self.policies.values())

    def price(self, model: str) -> Price | None:
        """The price of a model: an exact entry, else the first matching ``*`` pattern."""
        found = self.prices.get(model)
        if found is not None:
            return found
        for pattern, price in self.prices.items():
            if "*" in pattern and fnmatch.fnmatchcase(model, pattern):
                return price
        return None


def parse_limit_settings(settings: Mapping) -> LimitSettings:
    """Read the limit keys of every ``[policies.*]`` table and the ``[prices]`` table; other
    keys of a policy (models, caps, ...) belong to identity and are left alone here."""
    policies: dict[str, LimitPolicy] = {}
    tables = settings.get("policies", {})
    if not isinstance(tables, dict):
        raise ConfigError("EDGERELAY_CONFIG.policies", "must be a table of policies")
    for name, table in tables.items():
        where = f"EDGERELAY_CONFIG.policies.{name}"
        if not isinstance(table, dict):
            raise ConfigError(where, "must be a table")
        values = {k: _count(f"{where}.{k}", table.get(k)) for k in LIMIT_KEYS[:4]}
        budget = table.get("budget_usd_per_day")
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget < 0
        ):
            raise ConfigError(f"{where}.budget_usd_per_day", "must be a number of dollars >= 0")
        window = table.get("limit_window", "sliding")
        if window not in ("sliding", "fixed"):
            raise ConfigError(f"{where}.limit_window", 'must be "sliding" or "fixed"')
        reserve = _count(f"{where}.default_max_tokens", table.get("default_max_tokens"))
        policies[name] = LimitPolicy(
            **values,
            budget_usd_per_day=None if budget is None else float(budget),
            window=window,
            reserve_tokens=reserve or DEFAULT_RESERVE_TOKENS,
        )
    prices: dict[str, Price] = {}
    raw_prices = settings.get("prices", {})
    if not isinstance(raw_prices, dict):
        raise ConfigError("EDGERELAY_CONFIG.prices", "must be a table of models")
    for model, entry in raw_prices.items():
        where = f"EDGERELAY_CONFIG.prices.{model}"
        if not isinstance(entry, dict):
            raise ConfigError(where, "must be a table with input and output")
        prices[model] = Price(
            _dollars(f"{where}.input", entry.get("input")),
            _dollars(f"{where}.output", entry.get("output")),
        )
    limits = settings.get("limits", {})
    slot = (
        limits.get("stream_slot_seconds", DEFAULT_SLOT_SECONDS)
        if isinstance(limits, dict)
        else DEFAULT_SLOT_SECONDS
    )
    if isinstance(slot, bool) or not isinstance(slot, (int, float)) or slot <= 0:
        raise ConfigError(
            "EDGERELAY_CONFIG.limits.stream_slot_seconds", "must be a positive number"
        )
    result = LimitSettings(policies, prices, float(slot))
    for name, policy in policies.items():
        if policy.budget_usd_per_day is not None and not prices:
            raise ConfigError(
                f"EDGERELAY_CONFIG.policies.{name}.budget_usd_per_day",
                "needs a [prices] table (USD per million tokens per model)",
            )
    return result


def _count(where: str, value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(where, "must be a whole number >= 0")
    return value


def _dollars(where: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(where, "must be a number of USD per million tokens >= 0")
    return float(value)
