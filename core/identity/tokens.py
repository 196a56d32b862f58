"""JWTs as core sees them: shape recognition, base64url and JSON decoding, HS256, and the
time/issuer/audience claims. No signature arithmetic beyond HMAC (public keys go through the
``SignatureVerifier`` seam).

Every failure is an ``InvalidCredential`` whose public message says only "invalid" or
"expired": a caller probing the gateway learns nothing about which check failed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

_B64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
# Far above any real token (provider JWTs are 1-2 kB), far below the body limit.
MAX_TOKEN_BYTES = 16 * 1024


class InvalidCredential(Exception):
    """A credential that fails its check. ``expired`` picks the public wording; ``reason`` is
    for tests and debugging only and never reaches a response."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


class Jwt(NamedTuple):
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes  # b"<header>.<payload>" as received
    signature: bytes


def looks_like_jwt(credential: str) -> bool:
    """Three dot-separated non-empty base64url segments: the one shape that makes a JWT."""
    parts = credential.split(".")
    # isascii first: a character past latin-1 would make encode raise (and is no base64url).
    return len(parts) == 3 and all(
        p and p.isascii() and _B64URL.issuperset(p.encode("ascii")) for p in parts
    )


def b64url_decode(segment: str) -> bytes:
    try:
        raw = segment.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidCredential("non-ASCII segment") from None
    if not _B64URL.issuperset(raw) or len(raw) % 4 == 1:
        raise InvalidCredential("not base64url")
    try:
        return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCredential("not base64url") from None


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_jwt(token: str) -> Jwt:
    """Decode a compact JWS; ``InvalidCredential`` for anything malformed."""
    if len(token) > MAX_TOKEN_BYTES or not looks_like_jwt(token):
        raise InvalidCredential("not a compact JWS")
    head, payload, signature = token.split(".")
    header = _json_object(b64url_decode(head))
    claims = _json_object(b64url_decode(payload))
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise InvalidCredential("no alg")
    if header.get("crit") is not None:
        raise InvalidCredential("critical header extensions are not supported")
    return Jwt(header, claims, f"{head}.{payload}".encode("ascii"), b64url_decode(signature))


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidCredential("not JSON") from None
    if not isinstance(value, dict):
        raise InvalidCredential("not a JSON object")
    return value


def _reject(name: str):
    raise ValueError(name)


def hs256(secret: bytes, signing_input: bytes) -> bytes:
    return hmac.new(secret, signing_input, hashlib.sha256).digest()


def verify_hs256(jwt: Jwt, secret: bytes) -> None:
    if jwt.header.get("alg") != "HS256":
        raise InvalidCredential("alg is not HS256")
    if not hmac.compare_digest(hs256(secret, jwt.signing_input), jwt.signature):
        raise InvalidCredential("bad signature")


def mint_hs256(claims: Mapping[str, Any], secret: bytes) -> str:
    """A compact HS256 JWT (gateway sessions; tests)."""
    head = b64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    body = b64url_encode(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{head}.{body}".encode("ascii")
    return f"{head}.{body}.{b64url_encode(hs256(secret, signing_input))}"


class ClaimRules(NamedTuple):
    leeway: float = 30.0
    issuer: str | None = None
    audience: str | None = None


def check_claims(claims: Mapping[str, Any], now: float, rules: ClaimRules) -> None:
    """``exp`` (required), ``nbf`` and ``iat`` within the leeway; ``iss`` and ``aud`` when the
    rules name them; a non-empty string ``sub``."""
    exp = _numeric(claims, "exp")
    if exp is None:
        raise InvalidCredential("no exp")
    if now - rules.leeway >= exp:
        raise InvalidCredential("expired", expired=True)
    nbf = _numeric(claims, "nbf")
    if nbf is not None and now + rules.leeway < nbf:
        raise InvalidCredential("not yet valid")
    iat = _numeric(claims, "iat")
    if iat is not None and now + rules.leeway < iat:
        raise InvalidCredential("issued in the future")
    if rules.issuer is not None and claims.get("iss") != rules.issuer:
        raise InvalidCredential("wrong issuer")
    if rules.audience is not None:
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if rules.audience not in audiences:
            raise InvalidCredential("wrong audience")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidCredential("no subject")


def _numeric(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise InvalidCredential(f"{name} is not a number")
    return float(value)
