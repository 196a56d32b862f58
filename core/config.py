"""Configuration from environment variables (named as the official SDKs name them) and an
optional TOML document in ``EDGERELAY_CONFIG``. Every setting has a default; a bad one raises
``ConfigError`` naming it. Reading a file is the caller's job (core does no I/O): pass
``read_file`` to allow ``EDGERELAY_CONFIG`` to be a path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from . import registry
from .chains import Chain, Timeouts, load_settings
from .retry import RetryPolicy

if TYPE_CHECKING:  # both import ConfigError from here
    from .cache.settings import CacheSettings
    from .identity.settings import IdentitySettings
    from .limits.policy import LimitSettings


class ConfigError(Exception):
    """A bad setting, named. Messages never quote the value: a key pasted into the wrong
    variable must not end up in a log line or a response."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting


class ProviderConfig(NamedTuple):
    name: str  # the routing prefix: "openai", "groq", ...
    kind: str  # a registered kind (core.registry)
    base_url: str  # no trailing slash
    api_key: str | None
    api_key_env: str  # what to set when the key is missing
    key_required: bool = True
    # Models to list on /v1/models (from config); nothing is fetched from upstreams.
    models: tuple[str, ...] = ()
    # /v1/responses on an OpenAI-compatible provider: "native" passes it on to the upstream's
    # own /responses; "translate" sends Chat Completions (for servers without /responses).
    responses: str = "native"
    # Ask for stream usage (stream_options.include_usage) when limits need it; off for
    # OpenAI-compatible servers that reject the field (usage is then estimated).
    stream_usage: bool = True


class Config(NamedTuple):
    providers: Mapping[str, ProviderConfig]
    aliases: Mapping[str, str] = {}  # never mutated
    max_body_bytes: int = 10 * 1024 * 1024
    upstream_timeout: float = 600.0  # seconds to the upstream's response headers
    anthropic_default_max_tokens: int = 4096
    cors_origins: str = "*"  # "*" or comma-separated exact origins
    # Let the upstream client read HTTP(S)_PROXY, NO_PROXY and .netrc (off: a gateway holding
    # keys should not pick up a proxy or credentials from whatever environment it runs in).
    trust_env: bool = False
    # Client identity and policies (``core.identity.IdentitySettings``); None: nothing set.
    identity: IdentitySettings | None = None
    # Per-model facts from EDGERELAY_CONFIG's [models.<provider or kind>."<pattern>"] tables,
    # checked before the registry's own (models that arrive after a release).
    model_facts: Mapping[str, tuple[registry.ModelFacts, ...]] = {}
    # Upstream connections per provider (a pool each, so one busy provider cannot starve the
    # others), and the bound on waiting for a free one plus the TCP/TLS connect.
    pool_size: int = 256
    connect_timeout: float = 10.0
    # Longest pause between two pieces of a request body (the local server; Workers and Lambda
    # receive bodies through their platform).
    body_idle_timeout: float = 30.0
    # Most an upstream's non-stream answer may hold once decompressed (a small gzip can expand
    # to gigabytes; the answer is read whole to be translated).
    max_response_bytes: int = 32 * 1024 * 1024
    # Most messages in one chat request: translating each costs CPU on the event loop.
    max_messages: int = 2000
    # Most JSON values (array elements, object members) in one chat request, counted before
    # parsing: with the body limit alone, one request could hold the loop for seconds.
    max_request_values: int = 50_000
    # Most one event of an upstream stream may hold, parsed (translated streams) or held by
    # the stream observer until it is whole (every observed stream).
    max_event_bytes: int = 4 * 1024 * 1024
    # The response cache (``core.cache.CacheSettings``); None: not loaded (all off).
    cache: CacheSettings | None = None
    # Stored Responses API answers: how long they are kept, and the memory store's bound.
    responses_ttl: float = 24 * 3600.0
    responses_max_bytes: int = 64 * 1024 * 1024
    # Whether the idle timeout was set (EDGERELAY_IDLE_TIMEOUT, or EDGERELAY_UPSTREAM_TIMEOUT),
    # not left at its default. (The Worker no longer asks: it times every stream unless the
    # idle timeout is off, ``timeouts.idle == 0``.)
    idle_timeout_set: bool = False
    retry: RetryPolicy = RetryPolicy()  # EDGERELAY_RETRIES, EDGERELAY_RETRY_*
    timeouts: Timeouts = Timeouts()  # EDGERELAY_*_TIMEOUT
    chains: Mapping[str, Chain] = {}  # aliases given as tables (fallback chains); never mutated
    # Rate limits and budgets per policy ([policies.*] limit keys, [prices]); None: no limits.
    limits: LimitSettings | None = None
    # Admit requests unlimited when limits are configured but no counter store is reachable.
    store_fail_open: bool = False
    # Seconds to wait for a shared store (EDGERELAY_STORE_TIMEOUT) before it counts as down.
    store_timeout: float = 1.0
    log_level: str = "all"  # EDGERELAY_LOG: off | errors | all (one JSON line per request)
    # The password of the EDGERELAY_STORE URL (as written and percent-decoded), if it has one:
    # kept only to be redacted (the store adapters read the URL itself).
    store_secrets: tuple[str, ...] = ()


# Config fields holding secrets besides the providers' keys: each a str or a collection of str.
# A setting that holds one (client keys, a JWT, session, Turnstile or admin secret, the
# password of a store URL) names its field here, and core/redact.py then keeps it out of every
# response, passed-on header and log line.
SECRET_FIELDS: tuple[str, ...] = ("store_secrets",)


def _url_secrets(url: str | None) -> tuple[str, ...]:
    """The password of a URL such as ``rediss://user:pw@host/0``, as written and
    percent-decoded (core parses it itself: it may not import ``urllib``)."""
    if not url:
        return ()
    rest = url.partition("://")[2].split("?", 1)[0].split("#", 1)[0]
    # Up to the last @: a password someone did not percent-encode may hold a / (or an @).
    userinfo, at, _host = rest.rpartition("@")
    password = userinfo.partition(":")[2] if at else ""
    if not password:
        return ()
    decoded = re.sub(
        rb"%([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), password.encode()
    ).decode("utf-8", "replace")
    return tuple(dict.fromkeys((password, decoded)))


def load_config(env: Mapping[str, str], read_file: Callable[[str], str] | None = None) -> Config:
    """Build the configuration from an environment mapping."""

    def get(name: str) -> str | None:
        value = env.get(name)
        return value.strip() or None if isinstance(value, str) else None

    providers: dict[str, ProviderConfig] = {}
    for spec in registry.specs():
        if spec.builtin:
            providers[spec.kind] = _builtin_provider(spec, get)

    settings: dict = {}
    raw = get("EDGERELAY_CONFIG")
    if raw:
        settings = _parse_toml(raw, read_file)

    # An alias routes to its first target; a table alias also has a chain to fall back along.
    retry, timeouts, chains, aliases = load_settings(get, settings)

    named = settings.get("providers", {})
    if not isinstance(named, dict):
        raise ConfigError("EDGERELAY_CONFIG.providers", "must be a table of providers")
    for name, spec in named.items():
        providers[name] = _named_provider(name, spec, get)

    limits = _table(settings, "limits")

    def limit(read: Callable[[str, object, Any], Any], setting: str, default: Any) -> Any:
        """A size or time limit: the environment, else ``[limits]`` under the setting's
        name in lower case without the prefix, else ``default``."""
        key = setting.removeprefix("EDGERELAY_").lower()
        return read(setting, get(setting) or limits.get(key), default)

    max_body = limit(positive_int, "EDGERELAY_MAX_BODY_BYTES", 10 * 1024 * 1024)
    anthropic = _table(settings, "anthropic")
    max_tokens = positive_int(
        "EDGERELAY_ANTHROPIC_MAX_TOKENS",
        get("EDGERELAY_ANTHROPIC_MAX_TOKENS") or anthropic.get("default_max_tokens"),
        4096,
    )
    cors = get("EDGERELAY_CORS_ORIGINS") or _table(settings, "cors").get("origins") or "*"
    if not isinstance(cors, str) or not all(
        o.strip() == "*" or o.strip().startswith(("https://", "http://")) for o in cors.split(",")
    ):
        raise ConfigError("EDGERELAY_CORS_ORIGINS", "must be * or comma-separated http(s) origins")
    trust_env = boolean("EDGERELAY_TRUST_ENV", get("EDGERELAY_TRUST_ENV"))
    from .identity.settings import load_identity  # it imports ConfigError from here

    max_messages = get("EDGERELAY_MAX_MESSAGES")
    identity = load_identity(
        get, settings, positive_int("EDGERELAY_MAX_MESSAGES", max_messages, 0) or None
    )
    facts = _model_facts(_table(settings, "models"))
    from .cache.settings import load_cache_settings  # it imports ConfigError from here

    cache = load_cache_settings(get, settings)
    stored = _table(settings, "responses")
    responses_ttl = positive_float(
        "EDGERELAY_RESPONSES_TTL", get("EDGERELAY_RESPONSES_TTL") or stored.get("ttl"), 86400.0
    )
    responses_max_bytes = positive_int(
        "EDGERELAY_RESPONSES_MAX_BYTES",
        get("EDGERELAY_RESPONSES_MAX_BYTES") or stored.get("max_bytes"),
        64 * 1024 * 1024,
    )
    limit_settings = None
    if "policies" in settings or "prices" in settings:
        # Imported only then (cold start), and here since limits import config's ConfigError.
        from .limits.policy import parse_limit_settings

        limit_settings = parse_limit_settings(settings)
    return Config(
        providers,
        aliases,
        max_body,
        timeouts.first_byte,
        max_tokens,
        cors,
        trust_env,
        identity,
        facts,
        pool_size=limit(positive_int, "EDGERELAY_POOL_SIZE", 256),
        # One connect timeout: the pool wait plus the connect (chains.Timeouts reads it).
        connect_timeout=timeouts.connect,
        body_idle_timeout=limit(positive_float, "EDGERELAY_BODY_IDLE_TIMEOUT", 30.0),
        max_response_bytes=limit(positive_int, "EDGERELAY_MAX_RESPONSE_BYTES", 32 * 1024 * 1024),
        max_messages=limit(positive_int, "EDGERELAY_MAX_MESSAGES", 2000),
        max_event_bytes=limit(positive_int, "EDGERELAY_MAX_EVENT_BYTES", 4 * 1024 * 1024),
        max_request_values=limit(positive_int, "EDGERELAY_MAX_REQUEST_VALUES", 50_000),
        store_secrets=_url_secrets(get("EDGERELAY_STORE")),
        cache=cache,
        responses_ttl=responses_ttl,
        responses_max_bytes=responses_max_bytes,
        idle_timeout_set=any(
            value is not None
            for value in (
                get("EDGERELAY_IDLE_TIMEOUT"),
                get("EDGERELAY_UPSTREAM_TIMEOUT"),
                limits.get("idle_timeout"),
                limits.get("upstream_timeout"),
            )
        ),
        retry=retry,
        timeouts=timeouts,
        chains=chains,
        limits=limit_settings if limit_settings is not None and limit_settings.enabled else None,
        store_fail_open=boolean("EDGERELAY_STORE_FAIL_OPEN", get("EDGERELAY_STORE_FAIL_OPEN")),
        store_timeout=positive_float(
            "EDGERELAY_STORE_TIMEOUT", (get("EDGERELAY_STORE_TIMEOUT") or "").strip() or None, 1.0
        ),
        log_level=parse_level(get("EDGERELAY_LOG")),
    )


def _model_facts(tables: dict) -> dict[str, tuple[registry.ModelFacts, ...]]:
    """``[models.anthropic."claude-opus-5*"]`` rows: thinking, can_disable, efforts,
    signatures, as in the registry's own tables."""
    out: dict[str, tuple[registry.ModelFacts, ...]] = {}
    for owner, rows in tables.items():
        if not isinstance(rows, dict):
            raise ConfigError(f"EDGERELAY_CONFIG.models.{owner}", "must be a table of patterns")
        facts = []
        for pattern, row in rows.items():
            setting = f"EDGERELAY_CONFIG.models.{owner}.{pattern}"
            if not isinstance(row, dict):
                raise ConfigError(setting, "must be a table")
            unknown = set(row) - {"thinking", "can_disable", "efforts", "signatures"}
            if unknown:
                raise ConfigError(setting, f"unknown field {sorted(unknown)[0]}")
            thinking = row.get("thinking")
            if thinking not in registry.THINKING_KINDS:
                kinds = ", ".join(sorted(registry.THINKING_KINDS))
                raise ConfigError(f"{setting}.thinking", f"must be one of {kinds}")
            efforts = row.get("efforts", [])
            if not isinstance(efforts, list) or not all(isinstance(e, str) for e in efforts):
                raise ConfigError(f"{setting}.efforts", "must be a list of level names")
            if thinking in ("adaptive", "both", "level") and not efforts:
                raise ConfigError(f"{setting}.efforts", "is required for a model with levels")
            flags = {}
            for flag in ("can_disable", "signatures"):
                value = row.get(flag, flag == "can_disable")
                if not isinstance(value, bool):
                    raise ConfigError(f"{setting}.{flag}", "must be true or false")
                flags[flag] = value
            facts.append(
                registry.ModelFacts(
                    pattern, thinking, flags["can_disable"], tuple(efforts), flags["signatures"]
                )
            )
        out[owner] = tuple(facts)
    return out


def parse_level(value: str | None) -> str:
    """``EDGERELAY_LOG``: off | errors | all (default all)."""
    level = (value or "all").strip().lower()
    if level not in ("off", "errors", "all"):
        raise ConfigError("EDGERELAY_LOG", "must be off, errors or all")
    return level


def _builtin_provider(spec: registry.ProviderSpec, get: Callable) -> ProviderConfig:
    """A kind's own provider, configured from its environment names."""
    key_env = _first_set(spec.key_envs, get)
    url_env = _first_set(spec.url_envs, get)
    base_url = _url(url_env, get(url_env) or spec.default_url) if url_env else spec.default_url
    if spec.key_required == "at_default_url":
        key_required = base_url == spec.default_url
    else:
        key_required = spec.key_required == "always"
    return ProviderConfig(
        spec.kind,
        spec.kind,
        base_url,
        get(key_env) if key_env else None,
        key_env,
        key_required=key_required,
        models=spec.fixed_models,
    )


def _first_set(names: tuple[str, ...], get: Callable) -> str:
    """The first of ``names`` that is set, else the last (the one to name when missing)."""
    return next((name for name in names if get(name)), names[-1] if names else "")


def _table(settings: dict, name: str) -> dict:
    table = settings.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"EDGERELAY_CONFIG.{name}", "must be a table")
    return table


def _parse_toml(raw: str, read_file: Callable[[str], str] | None) -> dict:
    text = raw
    looks_like_path = "\n" not in raw and "=" not in raw and "[" not in raw
    if looks_like_path:
        if read_file is None:
            raise ConfigError("EDGERELAY_CONFIG", "a file path is not supported here; give TOML")
        try:
            text = read_file(raw)
        except OSError as exc:
            # Not the value itself: a key pasted here by mistake must not reach a log.
            raise ConfigError(
                "EDGERELAY_CONFIG", f"cannot read the file it names ({exc.strerror})"
            ) from None
    import tomllib  # only when there is TOML: it is slow to import

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("EDGERELAY_CONFIG", f"invalid TOML ({exc})") from None


def _named_provider(name: str, spec: object, get) -> ProviderConfig:
    setting = f"EDGERELAY_CONFIG.providers.{name}"
    kinds = [s.kind for s in registry.specs() if s.named]
    fixed = {s.kind for s in registry.specs() if not s.named}
    if not name.replace("-", "").replace("_", "").isalnum() or name in fixed:
        raise ConfigError(setting, "provider names are letters, digits, '-' and '_'")
    if not isinstance(spec, dict):
        raise ConfigError(setting, "must be a table")
    kind = spec.get("kind", registry.DEFAULT_KIND)
    if kind not in kinds:
        raise ConfigError(f"{setting}.kind", f"must be one of {', '.join(kinds)}")
    base_url = spec.get("base_url")
    if not isinstance(base_url, str):
        raise ConfigError(f"{setting}.base_url", "is required")
    key_env = spec.get("api_key_env")
    if key_env is not None and not isinstance(key_env, str):
        raise ConfigError(f"{setting}.api_key_env", "must be an environment variable name")
    models = spec.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise ConfigError(f"{setting}.models", "must be a list of model names")
    responses = spec.get("responses", "native")
    if responses not in ("native", "translate") or (responses == "translate" and kind != "openai"):
        raise ConfigError(f"{setting}.responses", "must be native or translate (openai kind only)")
    stream_usage = spec.get("stream_usage", True)
    if not isinstance(stream_usage, bool):
        raise ConfigError(f"{setting}.stream_usage", "must be true or false")
    return ProviderConfig(
        name,
        kind,
        _url(f"{setting}.base_url", base_url),
        get(key_env) if key_env else None,
        key_env or "",
        key_required=bool(key_env),
        models=tuple(models),
        responses=responses,
        stream_usage=stream_usage,
    )


def _url(setting: str, value: str) -> str:
    if not (value.startswith("https://") or value.startswith("http://")):
        raise ConfigError(setting, "must be an http(s) URL")
    return value.rstrip("/")


# The readers every settings module uses (cache, identity, chains): one wording per error.


def boolean(setting: str, value: str | None) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off); unset is false."""
    if value is None:
        return False
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(setting, "must be true or false")


def positive_int(setting: str, value: object, default: int) -> int:
    """A whole number above zero; unset is ``default``."""
    if value is None:
        return default
    try:
        number = int(value)  # type: ignore[call-overload]  # anything: a bad one is caught
    except (TypeError, ValueError):
        raise ConfigError(setting, "must be a whole number") from None
    if number <= 0:
        raise ConfigError(setting, "must be positive")
    return number


def positive_float(setting: str, value: object, default: float) -> float:
    """A number of seconds above zero; unset is ``default``."""
    if value is None:
        return default
    try:
        number = float(value)  # type: ignore[arg-type]  # anything: a bad one is caught
    except (TypeError, ValueError):
        raise ConfigError(setting, "must be a number of seconds") from None
    if number <= 0:
        raise ConfigError(setting, "must be positive")
    return number
