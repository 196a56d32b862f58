"""The ``SignatureVerifier`` for CPython (local server and Lambda): PyJWT's JWA algorithms over
``cryptography``.

Only the signature arithmetic happens here; core has already parsed the token, checked its
claims and picked the JWK (``edgerelay.core.identity``). PyJWT and joserfc were measured
(bench/identity_bench.py): both hand the arithmetic to ``cryptography``, so a check costs the same,
and nearly all of either's import time is ``cryptography``'s own. PyJWT won on what is left: its
per-algorithm ``verify`` takes the JWS signature as sent (ES256's raw ``r || s`` included), it
adds one small pure-Python wheel to the Lambda package, and the tests mint tokens with it.

Imported only when ``EDGERELAY_JWKS_URL`` is set (``load_verifier``), so a deployment without
JWKS never pays for ``cryptography``'s import.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.exceptions import InvalidKeyError

from edgerelay.core.identity import UnsupportedKey

# ES256's JWS signature is raw r || s (64 bytes); PyJWT's ECAlgorithm.verify converts it.
_ALGORITHMS = {
    "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
    "ES256": ECAlgorithm(ECAlgorithm.SHA256),
    "EdDSA": OKPAlgorithm(),
}
_KEY_CACHE_SIZE = 64


class CryptographyVerifier:
    """Checks RS256, ES256 and EdDSA (Ed25519) signatures. Parsed public keys are kept, keyed
    by their JWK, so a rotation-free JWKS is parsed once per process."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], Any] = {}

    async def verify(
        self, alg: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes
    ) -> bool:
        algorithm = _ALGORITHMS.get(alg)
        if algorithm is None:
            raise UnsupportedKey(f"algorithm {alg} is not supported")
        key = self._key(alg, algorithm, jwk)
        try:
            return bool(algorithm.verify(signing_input, key, signature))
        except (ValueError, TypeError):  # e.g. an ES256 signature of the wrong length
            return False

    def _key(self, alg: str, algorithm: Any, jwk: Mapping[str, Any]) -> Any:
        cache_key = (alg, json.dumps(dict(jwk), sort_keys=True))
        key = self._keys.get(cache_key)
        if key is None:
            try:
                key = algorithm.from_jwk(dict(jwk))
            except (InvalidKeyError, ValueError, TypeError, KeyError) as exc:
                raise UnsupportedKey(f"the JWK cannot be used for {alg}") from exc
            if hasattr(key, "public_key") and not _is_public(key):
                key = key.public_key()  # a JWKS that leaked a private key still only verifies
            if len(self._keys) >= _KEY_CACHE_SIZE:
                self._keys.pop(next(iter(self._keys)))
            self._keys[cache_key] = key
        return key


def _is_public(key: Any) -> bool:
    return "Public" in type(key).__name__
