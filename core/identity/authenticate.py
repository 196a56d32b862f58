"""Who is calling: one credential from the request, recognised by its shape and checked by its
kind only (a failed check is a 401, never a fall-through to another kind), turned into a
client id and a policy.

- a JWT whose ``iss`` is ``edgerelay-session``: a gateway session, HS256 with the session
  secret; policy ``anonymous``; id ``session:<sub>``.
- any other JWT: HS256 with ``EDGERELAY_JWT_SECRET``, or RS256/ES256/EdDSA with a key from
  ``EDGERELAY_JWKS_URL`` through the ``SignatureVerifier`` seam; policy from its claim;
  id ``jwt:<sub>``.
- anything else: a client key; policy from its config entry; id ``key:<digest prefix>``.

Verified JWTs are kept briefly in a bounded cache keyed by the token's hash (never past their
``exp``), so a stream of requests with one token costs one signature check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import NamedTuple

from ..errors import GatewayError
from ..fetch import Fetch
from .client_keys import key_id
from .jwks import JwksUnavailable
from .policy import ANONYMOUS, DEFAULT, Policy, anonymous_policy, policy_named
from .sessions import SESSION_ISSUER
from .settings import IDENTITY_SETTINGS, IdentitySettings
from .tokens import (
    ClaimRules,
    InvalidCredential,
    Jwt,
    check_claims,
    looks_like_jwt,
    parse_jwt,
    verify_hs256,
)
from .verify import PUBLIC_KEY_ALGORITHMS, SignatureVerifier, UnsupportedKey

# Headers that carry a credential: everywhere, and where each SDK puts its key on its own
# passthrough route (anthropic: x-api-key; google-genai: x-goog-api-key).
_PASSTHROUGH_HEADERS = ("x-api-key", "x-goog-api-key")
CACHE_SECONDS = 300.0  # a verified token is trusted this long at most, then checked again


class Identity(NamedTuple):
    client_id: str  # "jwt:<sub>", "key:<id>", "session:<id>" or "anonymous"
    policy: Policy


def credential_of(headers: Mapping[str, str], passthrough: bool) -> str | None:
    """The presented credential: ``Authorization: Bearer`` anywhere, an SDK's key header on the
    passthrough routes."""
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if passthrough:
        for name in _PASSTHROUGH_HEADERS:
            value = headers.get(name, "").strip()
            if value:
                return value
    return None


class Authenticator:
    def __init__(
        self,
        settings: IdentitySettings,
        fetch: Fetch,
        clock: Callable[[], float],
        verifier: SignatureVerifier | None,
        *,
        public: bool,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._verifier = verifier
        self._rules = ClaimRules(settings.jwt_leeway, settings.jwt_issuer, settings.jwt_audience)
        self._session_rules = ClaimRules(settings.jwt_leeway, SESSION_ISSUER)
        self._fetch = fetch
        self.jwks = settings.caches.jwks
        self.cache = settings.caches.tokens
        policies = settings.policies
        # Anonymous callers: refused on a public target with no identity configured, unless
        # allowed explicitly; when identity is on, only with EDGERELAY_ALLOW_ANONYMOUS=true.
        self._anonymous_allowed = settings.allow_anonymous or (not public and not settings.enabled)
        # With identity off, everyone is anonymous: a configured `anonymous` policy applies,
        # else `default` (so `make dev` keeps every route). With identity on, the built-in
        # `anonymous` (no passthrough) applies when there is none.
        if settings.enabled or ANONYMOUS in policies:
            self._anonymous = Identity("anonymous", anonymous_policy(policies))
        else:
            self._anonymous = Identity("anonymous", policies[DEFAULT])
        self._session_policy = anonymous_policy(policies)

    async def identify(self, headers: Mapping[str, str], passthrough: bool) -> Identity:
        """The caller's identity; ``GatewayError`` 401 (or 503 when keys cannot be had)."""
        if not self.settings.enabled:
            # Nothing to check a credential against: SDKs send some api_key anyway ("unused").
            if self._anonymous_allowed:
                return self._anonymous
            raise _unconfigured()
        credential = credential_of(headers, passthrough)
        if credential is None:
            if self._anonymous_allowed:
                return self._anonymous
            raise _unauthorized("A credential is required: send Authorization: Bearer <token>.")
        try:
            if looks_like_jwt(credential):
                return await self._jwt(credential)
            return self._client_key(credential)
        except InvalidCredential as failed:
            if failed.expired:
                raise _unauthorized("The credential has expired.", "expired_token") from None
            raise _unauthorized("The credential is invalid.", "invalid_api_key") from None

    def _client_key(self, credential: str) -> Identity:
        match = self.settings.client_keys.match(credential)
        if match is None:
            raise InvalidCredential("unknown client key")
        policy = policy_named(self.settings.policies, match.policy)
        if policy is None:  # settings refuse a key naming an unknown policy
            raise InvalidCredential("unknown policy")
        return Identity("key:" + key_id(match.digest), policy)

    async def _jwt(self, token: str) -> Identity:
        digest = hashlib.sha256(token.encode("ascii")).digest()
        now = self._clock()
        known = self.cache.get(digest, now)
        if known is not None:
            return known
        jwt = parse_jwt(token)
        if jwt.claims.get("iss") == SESSION_ISSUER:
            identity = self._session(jwt, now)
        else:
            identity = await self._app_jwt(jwt, now)
        exp = float(jwt.claims["exp"])  # check_claims made sure it is a number
        self.cache.put(digest, identity, min(exp, now + CACHE_SECONDS))
        return identity

    def _session(self, jwt: Jwt, now: float) -> Identity:
        if self.settings.session_secret is None:
            raise InvalidCredential("sessions are off")
        verify_hs256(jwt, self.settings.session_secret)
        check_claims(jwt.claims, now, self._session_rules)
        return Identity("session:" + jwt.claims["sub"], self._session_policy)

    async def _app_jwt(self, jwt: Jwt, now: float) -> Identity:
        alg = jwt.header["alg"]
        if alg == "HS256":
            if self.settings.jwt_secret is None:
                raise InvalidCredential("no JWT secret")  # never a JWKS key as an HMAC secret
            verify_hs256(jwt, self.settings.jwt_secret)
        elif alg in PUBLIC_KEY_ALGORITHMS:
            await self._verify_with_jwks(jwt, alg)
        else:
            raise InvalidCredential("algorithm not allowed")  # "none" among others
        check_claims(jwt.claims, now, self._rules)
        name = jwt.claims.get(self.settings.policy_claim, DEFAULT)
        policy = policy_named(self.settings.policies, name) if isinstance(name, str) else None
        if policy is None:
            raise InvalidCredential("unknown policy")
        return Identity("jwt:" + jwt.claims["sub"], policy)

    async def _verify_with_jwks(self, jwt: Jwt, alg: str) -> None:
        if self.jwks is None:
            raise InvalidCredential("no JWKS configured")
        if self._verifier is None:
            raise GatewayError(
                503,
                "JWTs signed with a public key cannot be checked on this deployment: no "
                "signature verifier is installed for EDGERELAY_JWKS_URL.",
                type="service_unavailable",
                code="verifier_unavailable",
            )
        kid = jwt.header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidCredential("kid is not a string")
        try:
            jwk = await self.jwks.get(kid, self._fetch, self._clock)
        except JwksUnavailable:
            raise GatewayError(
                503,
                "The identity provider's keys (EDGERELAY_JWKS_URL) could not be fetched; "
                "try again.",
                type="service_unavailable",
                code="jwks_unavailable",
            ) from None
        if jwk is None:
            raise InvalidCredential("unknown kid")
        if alg not in allowed_algorithms(jwk):
            raise InvalidCredential("alg not allowed for this key")
        try:
            good = await self._verifier.verify(alg, jwk, jwt.signing_input, jwt.signature)
        except UnsupportedKey:
            raise InvalidCredential("unsupported key") from None
        if good is not True:
            raise InvalidCredential("bad signature")


def allowed_algorithms(jwk: Mapping[str, object]) -> tuple[str, ...]:
    """What a JWK may verify: its ``alg`` when it names one, else what its type implies.
    Never HS256 (a public key is no HMAC secret) and never ``none``."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    implied: tuple[str, ...] = ()
    if kty == "RSA":
        implied = ("RS256",)
    elif kty == "EC" and crv == "P-256":
        implied = ("ES256",)
    elif kty == "OKP" and crv == "Ed25519":
        implied = ("EdDSA",)
    named = jwk.get("alg")
    if named is not None:
        return (named,) if named in implied else ()
    return implied


def _unauthorized(message: str, code: str = "missing_credential") -> GatewayError:
    return GatewayError(
        401, message, code=code, headers=(("www-authenticate", 'Bearer realm="edgerelay"'),)
    )


def _unconfigured() -> GatewayError:
    return GatewayError(
        401,
        "This gateway serves identified clients only, and no identity is configured: set "
        + ", ".join(IDENTITY_SETTINGS[:-1])
        + f" or {IDENTITY_SETTINGS[-1]} (with EDGERELAY_SESSION_SECRET); "
        "or EDGERELAY_ALLOW_ANONYMOUS=true to serve anyone.",
        code="identity_not_configured",
        headers=(("www-authenticate", 'Bearer realm="edgerelay"'),),
    )
