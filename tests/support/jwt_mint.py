"""Real signing keys and JWTs for tests (CPython, ``cryptography``): RSA 2048 (RS256), P-256
(ES256) and Ed25519 (EdDSA), their public JWKs as an identity provider's JWKS serves them, and
compact JWS tokens signed with them. Nothing here verifies: that is the code under test."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ALGORITHMS = ("RS256", "ES256", "EdDSA")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64(number: int, length: int | None = None) -> str:
    length = length or (number.bit_length() + 7) // 8
    return b64url(number.to_bytes(length, "big"))


@dataclass(frozen=True)
class SigningKey:
    """A private key with its algorithm, ``kid`` and public JWK."""

    alg: str
    kid: str
    private: Any
    jwk: Mapping[str, str]

    def sign(self, signing_input: bytes) -> bytes:
        """The JWS signature bytes (ES256: raw ``r || s``, 64 bytes)."""
        if self.alg == "RS256":
            return self.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return self.private.sign(signing_input)


def new_key(alg: str, kid: str | None = None) -> SigningKey:
    """A fresh key for ``alg`` (one of ``ALGORITHMS``)."""
    kid = kid or f"{alg.lower()}-key"
    if alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = private.public_key().public_numbers()
        jwk = {"kty": "RSA", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        numbers = private.public_key().public_numbers()
        jwk = {"kty": "EC", "crv": "P-256", "x": _int_b64(numbers.x, 32)}
        jwk["y"] = _int_b64(numbers.y, 32)
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes_raw()
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}
    else:
        raise ValueError(f"unknown algorithm {alg}")
    return SigningKey(alg, kid, private, {**jwk, "kid": kid, "alg": alg, "use": "sig"})


def mint(key: SigningKey, claims: Mapping[str, Any], **header: Any) -> str:
    """A compact JWS of ``claims`` signed with ``key`` (header: alg, typ, kid, then extras)."""
    head = {"alg": key.alg, "typ": "JWT", "kid": key.kid, **header}
    signing_input = (
        b64url(json.dumps(head, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    )
    return signing_input + "." + b64url(key.sign(signing_input.encode()))


def jwks(*keys: SigningKey) -> dict:
    """The JWKS document serving these keys' public halves."""
    return {"keys": [dict(key.jwk) for key in keys]}
