"""The one seam through which core has a public-key signature checked.

Core parses tokens, checks claims and picks the key; only the signature arithmetic needs a
platform's crypto (WebCrypto in the Worker, ``cryptography`` on CPython and Lambda), so each
target supplies a ``SignatureVerifier`` and core stays standard-library only. HS256 (the client
JWT secret and gateway sessions) is checked in core with ``hmac`` and never comes here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

# The JWS algorithms a verifier may be asked about. EdDSA means Ed25519 (``"crv": "Ed25519"``).
PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256", "EdDSA")


class UnsupportedKey(Exception):
    """Raised by a verifier for a key or algorithm it cannot check (an unknown ``kty``/``crv``,
    EdDSA where the platform lacks Ed25519, a JWK missing its numbers). Core answers 401."""


class SignatureVerifier(Protocol):
    """Checks one JWS signature against one public key.

    ``alg`` is one of ``PUBLIC_KEY_ALGORITHMS``; ``jwk`` is the key's JWK object exactly as the
    JWKS serves it; ``signing_input`` is ``b"<header b64>.<payload b64>"``; ``signature`` is the
    decoded signature (for ES256 the raw ``r || s``, 64 bytes, as JWS sends it).
    Returns False for a signature that does not match; raises ``UnsupportedKey`` only when the
    key or algorithm cannot be used at all.
    """

    async def verify(
        self, alg: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes
    ) -> bool: ...
