"""Per-client policies from ``EDGERELAY_CONFIG``: which models, how many output tokens, how many
messages, which passthrough routes.

``[policies.<name>]`` tables hold ``models`` (exact names and ``*`` patterns, matched after
alias resolution, bare or provider-qualified), ``max_tokens`` (the cap), ``default_max_tokens``,
``max_messages`` and ``passthrough`` (provider names whose native routes are allowed). A policy
that leaves a key out does not restrict it. ``default`` and ``anonymous`` always exist: absent
from the config, ``default`` restricts nothing and ``anonymous`` is ``default`` without
passthrough (OpenAI's ``/responses`` passthrough can run billed built-in tools and read stored
responses; ``GET models`` lists the organisation's fine-tuned model ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from ..config import ConfigError

DEFAULT = "default"
ANONYMOUS = "anonymous"


class Policy(NamedTuple):
    name: str
    models: tuple[str, ...] | None = None  # None: any model
    max_tokens: int | None = None
    default_max_tokens: int | None = None
    max_messages: int | None = None
    passthrough: frozenset[str] | None = None  # None: every provider's native routes

    @property
    def inspects_bodies(self) -> bool:
        """Whether a passthrough body must be read to enforce this policy."""
        return self.models is not None or self.output_tokens is not None

    @property
    def output_tokens(self) -> int | None:
        """What a request that names no limit gets: the default, else the cap (without it a
        client could skip the cap by leaving ``max_tokens`` out)."""
        return self.default_max_tokens or self.max_tokens

    def allows_model(self, *names: str) -> bool:
        """Whether any of ``names`` (the resolved name, its provider-qualified form) matches."""
        if self.models is None:
            return True
        return any(fnmatchcase(name, pattern) for pattern in self.models for name in names)

    def allows_passthrough(self, provider: str) -> bool:
        return self.passthrough is None or provider in self.passthrough


def load_policies(
    settings: Mapping[str, Any], max_messages: int | None = None
) -> dict[str, Policy]:
    """The configured policies by name, ``default`` always among them (``anonymous`` only when
    configured: see ``policy_named``); ``max_messages`` is EDGERELAY_MAX_MESSAGES, the default
    for every policy."""
    tables = settings.get("policies", {})
    if not isinstance(tables, dict):
        raise ConfigError("EDGERELAY_CONFIG.policies", "must be a table of policies")
    policies = {name: _policy(name, spec, max_messages) for name, spec in tables.items()}
    policies.setdefault(DEFAULT, Policy(DEFAULT, max_messages=max_messages))
    return policies


def policy_named(policies: Mapping[str, Policy], name: str) -> Policy | None:
    """A configured policy, or the built-in ``anonymous`` (``default`` without passthrough)."""
    if name == ANONYMOUS:
        return anonymous_policy(policies)
    return policies.get(name)


def anonymous_policy(policies: Mapping[str, Policy]) -> Policy:
    """The configured ``anonymous`` policy, else ``default`` without passthrough."""
    policy = policies.get(ANONYMOUS)
    if policy is None:
        policy = policies[DEFAULT]._replace(name=ANONYMOUS, passthrough=frozenset())
    return policy


def _policy(name: str, spec: object, max_messages: int | None) -> Policy:
    where = f"EDGERELAY_CONFIG.policies.{name}"
    if not isinstance(spec, dict):
        raise ConfigError(where, "must be a table")
    unknown = set(spec) - {
        "models",
        "max_tokens",
        "default_max_tokens",
        "max_messages",
        "passthrough",
        # the limit keys, read by core.limits.policy
        "requests_per_minute",
        "concurrent_streams",
        "tokens_per_minute",
        "tokens_per_day",
        "budget_usd_per_day",
        "limit_window",
    }
    if unknown:
        raise ConfigError(where, f"unknown key {sorted(unknown)[0]!r}")
    models = _names(where, "models", spec.get("models"))
    passthrough = _names(where, "passthrough", spec.get("passthrough"))
    cap = _count(where, "max_tokens", spec.get("max_tokens"))
    default = _count(where, "default_max_tokens", spec.get("default_max_tokens"))
    if cap is not None and default is not None and default > cap:
        raise ConfigError(f"{where}.default_max_tokens", "must not be larger than max_tokens")
    messages = _count(where, "max_messages", spec.get("max_messages"))
    return Policy(
        name,
        models,
        cap,
        default,
        messages if messages is not None else max_messages,
        frozenset(passthrough) if passthrough is not None else _default_passthrough(name),
    )


def _default_passthrough(name: str) -> frozenset[str] | None:
    """No passthrough for ``anonymous`` unless its table lists some; every route otherwise."""
    return frozenset() if name == ANONYMOUS else None


def _names(where: str, key: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}.{key}", "must be a list of names")
    return tuple(value)


def _count(where: str, key: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where}.{key}", "must be a positive whole number")
    return value


def cap_fields(body: dict, fields: Iterable[str], policy: Policy, default_field: str | None):
    """Lower each present output-limit field to the cap; when none is present, set the
    policy's default under ``default_field``. Returns True when ``body`` changed. Dotted fields
    (``generationConfig.maxOutputTokens``) name a nested object."""
    changed = found = False
    for field in fields:
        parent, key = _parent(body, field)
        if parent is None or key not in parent:
            continue
        value = parent[key]
        found = True
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue  # not a number: the upstream rejects it in its own words
        if policy.max_tokens is not None and value > policy.max_tokens:
            parent[key] = policy.max_tokens
            changed = True
    if not found and default_field is not None and policy.output_tokens is not None:
        parent, key = _parent(body, default_field, create=True)
        if parent is not None:
            parent[key] = policy.output_tokens
            changed = True
    return changed


def _parent(body: dict, field: str, create: bool = False) -> tuple[dict | None, str]:
    *path, key = field.split(".")
    node: Any = body
    for part in path:
        child = node.get(part)
        if child is None and create:
            child = node[part] = {}
        if not isinstance(child, dict):
            return None, key
        node = child
    return node, key
