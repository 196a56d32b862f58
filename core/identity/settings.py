"""Identity settings from the environment and ``EDGERELAY_CONFIG``, with ``load_config``'s rules:
every setting has a default, a bad one raises ``ConfigError`` naming it and never quoting it
(most of these are secrets)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from ..config import ConfigError, boolean
from .cache import IdentityCaches
from .client_keys import ClientKey, ClientKeys, parse_key_entry
from .policy import DEFAULT, Policy, load_policies, policy_named

TURNSTILE_VERIFY_URL = "https://challenges.cloudflare.com/turnstile/v0/siteverify"
# The settings a public deployment must set one of; named in the secure default's 401.
IDENTITY_SETTINGS = (
    "EDGERELAY_JWKS_URL",
    "EDGERELAY_JWT_SECRET",
    "EDGERELAY_CLIENT_KEYS",
    "EDGERELAY_TURNSTILE_SECRET",
)
_MIN_SECRET = 32  # characters: an HS256 secret shorter than the hash is guessable offline


class IdentitySettings(NamedTuple):
    jwks_url: str | None = None
    jwt_secret: bytes | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway: float = 30.0
    policy_claim: str = "edgerelay_policy"
    client_keys: ClientKeys = ClientKeys(())
    turnstile_secret: str | None = None
    turnstile_site_key: str | None = None
    turnstile_verify_url: str = TURNSTILE_VERIFY_URL
    turnstile_hostnames: frozenset[str] | None = None
    session_secret: bytes | None = None
    session_ttl: int = 900
    allow_anonymous: bool = False
    policies: Mapping[str, Policy] = {DEFAULT: Policy(DEFAULT)}
    # The JWKS and verified tokens, shared by every Gateway built from these settings.
    caches: IdentityCaches = IdentityCaches()

    @property
    def enabled(self) -> bool:
        """Whether any kind of credential is configured."""
        return bool(self.jwks_url or self.jwt_secret or self.client_keys or self.sessions)

    @property
    def sessions(self) -> bool:
        return self.turnstile_secret is not None and self.session_secret is not None

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value held, for log redaction."""
        out = [self.turnstile_secret]
        out += [s.decode() for s in (self.jwt_secret, self.session_secret) if s]
        return tuple(s for s in out if s)


def load_identity(
    get: Callable[[str], str | None], settings: Mapping[str, Any], max_messages: int | None = None
) -> IdentitySettings:
    """``get`` reads a stripped environment value (None when unset); ``settings`` is the parsed
    EDGERELAY_CONFIG."""
    policies = load_policies(settings, max_messages)
    jwks_url = get("EDGERELAY_JWKS_URL")
    if jwks_url is not None:
        _check_url("EDGERELAY_JWKS_URL", jwks_url)
    leeway = _seconds("EDGERELAY_JWT_LEEWAY", get("EDGERELAY_JWT_LEEWAY"), 30.0, zero_ok=True)
    ttl = int(_seconds("EDGERELAY_SESSION_TTL", get("EDGERELAY_SESSION_TTL"), 900))
    turnstile = get("EDGERELAY_TURNSTILE_SECRET")
    session_secret = _secret("EDGERELAY_SESSION_SECRET", get("EDGERELAY_SESSION_SECRET"))
    if turnstile is not None and session_secret is None:
        raise ConfigError(
            "EDGERELAY_SESSION_SECRET", "is required with EDGERELAY_TURNSTILE_SECRET (it signs)"
        )
    verify_url = get("EDGERELAY_TURNSTILE_VERIFY_URL") or TURNSTILE_VERIFY_URL
    _check_url("EDGERELAY_TURNSTILE_VERIFY_URL", verify_url)
    hostnames = get("EDGERELAY_TURNSTILE_HOSTNAMES")
    return IdentitySettings(
        jwks_url=jwks_url,
        jwt_secret=_secret("EDGERELAY_JWT_SECRET", get("EDGERELAY_JWT_SECRET")),
        jwt_issuer=get("EDGERELAY_JWT_ISSUER"),
        jwt_audience=get("EDGERELAY_JWT_AUDIENCE"),
        jwt_leeway=leeway,
        policy_claim=get("EDGERELAY_POLICY_CLAIM") or "edgerelay_policy",
        client_keys=ClientKeys(_client_keys(get("EDGERELAY_CLIENT_KEYS"), settings, policies)),
        turnstile_secret=turnstile,
        turnstile_site_key=get("EDGERELAY_TURNSTILE_SITE_KEY"),
        turnstile_verify_url=verify_url,
        turnstile_hostnames=(
            frozenset(h.strip() for h in hostnames.split(",") if h.strip()) if hostnames else None
        ),
        session_secret=session_secret,
        session_ttl=ttl,
        allow_anonymous=boolean("EDGERELAY_ALLOW_ANONYMOUS", get("EDGERELAY_ALLOW_ANONYMOUS")),
        policies=policies,
        caches=IdentityCaches(jwks_url),
    )


def _client_keys(
    raw: str | None, settings: Mapping[str, Any], policies: Mapping[str, Policy]
) -> list[ClientKey]:
    keys = [
        ClientKey(parse_key_entry(entry, "EDGERELAY_CLIENT_KEYS"), DEFAULT)
        for entry in (raw or "").split(",")
        if entry.strip()
    ]
    clients = settings.get("clients", {})
    if not isinstance(clients, dict):
        raise ConfigError("EDGERELAY_CONFIG.clients", "must be a table of clients")
    for name, spec in clients.items():
        where = f"EDGERELAY_CONFIG.clients.{name}"
        if not isinstance(spec, dict) or not isinstance(spec.get("key"), str):
            raise ConfigError(where, 'needs key = "sha256:<hex>"')
        policy = spec.get("policy", DEFAULT)
        if not isinstance(policy, str) or policy_named(policies, policy) is None:
            raise ConfigError(f"{where}.policy", "names no [policies.*] table")
        keys.append(ClientKey(parse_key_entry(spec["key"], f"{where}.key"), policy))
    return keys


def _check_url(setting: str, url: str) -> None:
    """https, or http to a loopback address (tests, a local identity provider)."""
    if url.startswith("https://"):
        return
    if url.startswith("http://") and _is_loopback(url[len("http://") :].split("/", 1)[0]):
        return
    raise ConfigError(setting, "must be an https URL (http only on a loopback address)")


def _is_loopback(netloc: str) -> bool:
    host = netloc.rsplit(":", 1)[0] if not netloc.endswith("]") else netloc
    if host == "localhost":
        return True
    import ipaddress  # only for a plain-http URL: tests and local identity providers

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _secret(setting: str, value: str | None) -> bytes | None:
    if value is None:
        return None
    if len(value) < _MIN_SECRET:
        raise ConfigError(setting, f"must be at least {_MIN_SECRET} characters")
    return value.encode()


def _seconds(setting: str, value: str | None, default: float, zero_ok: bool = False) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(setting, "must be a number of seconds") from None
    if not (number >= 0 if zero_ok else number > 0) or number == float("inf"):
        raise ConfigError(setting, "must be a positive number of seconds")
    return number
