"""``SignatureVerifier`` over the runtime's WebCrypto (``crypto.subtle``): the Worker's half of
the identity seam. Core parses the token, checks its claims and picks the JWK; this module only
does the signature arithmetic, which Pyodide cannot do fast in pure Python but the runtime does
natively.

A JWK is imported once (``importKey`` parses and validates the key, which costs more than the
verification itself) and the ``CryptoKey`` is kept per (kid, alg, key material), so a key that a
JWKS rotation replaces under the same ``kid`` is never mistaken for the old one. The cache is
small and bounded: a JWKS holds a handful of keys.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import js
from pyodide.ffi import JsException, to_js

from edgerelay.core.identity import UnsupportedKey

# alg -> (required kty, required crv or None, the JWK members that make up the public key,
#         importKey's algorithm, verify's algorithm). Only public members are handed to
# importKey: a JWKS entry's own "alg"/"key_ops"/"use" spellings differ between providers
# (Ed25519 keys say "EdDSA" or "Ed25519") and WebCrypto would refuse a mismatch we already check.
_ALGORITHMS: dict[str, tuple[str, str | None, tuple[str, ...], dict, dict]] = {
    "RS256": (
        "RSA",
        None,
        ("kty", "n", "e"),
        {"name": "RSASSA-PKCS1-v1_5", "hash": "SHA-256"},
        {"name": "RSASSA-PKCS1-v1_5"},
    ),
    "ES256": (
        "EC",
        "P-256",
        ("kty", "crv", "x", "y"),
        {"name": "ECDSA", "namedCurve": "P-256"},
        {"name": "ECDSA", "hash": "SHA-256"},
    ),
    "EdDSA": (
        "OKP",
        "Ed25519",
        ("kty", "crv", "x"),
        {"name": "Ed25519"},
        {"name": "Ed25519"},
    ),
}
# A JWK's own "alg" may name EdDSA by its curve.
_JWK_ALG_SPELLINGS = {"EdDSA": ("EdDSA", "Ed25519")}


def _js_object(mapping: Mapping[str, Any]):
    # A plain JS object: to_js would otherwise build a Map, which WebCrypto does not read.
    return to_js(dict(mapping), dict_converter=js.Object.fromEntries)


def public_members(alg: str, jwk: Mapping[str, Any]) -> dict[str, str]:
    """The members of ``jwk`` that make up its public key for ``alg``; raises
    ``UnsupportedKey`` when the key cannot be used with ``alg`` at all."""
    try:
        kty, crv, members, _, _ = _ALGORITHMS[alg]
    except KeyError:
        raise UnsupportedKey(f"algorithm {alg!r} is not supported") from None
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        raise UnsupportedKey(f"the key is not a {crv or kty} key, so it cannot check {alg}")
    if "alg" in jwk and jwk["alg"] not in _JWK_ALG_SPELLINGS.get(alg, (alg,)):
        raise UnsupportedKey(f"the key is for {jwk['alg']!r}, not {alg}")
    if jwk.get("use", "sig") != "sig":
        raise UnsupportedKey("the key is not a signing key")
    public = {name: jwk.get(name) for name in members}
    if not all(isinstance(value, str) and value for value in public.values()):
        raise UnsupportedKey(f"the key lacks one of {', '.join(members)}")
    return public


class WebCryptoVerifier:
    """Checks RS256, ES256 and EdDSA (Ed25519) signatures with ``crypto.subtle``.

    ``subtle`` defaults to the runtime's ``crypto.subtle`` (workerd's; Node's in the tests).
    EdDSA works where the runtime verifies Ed25519 (workerd and Node 20+ do); where it does not,
    the import fails and the key is refused as unsupported.
    """

    def __init__(self, subtle: Any = None, *, max_keys: int = 32) -> None:
        # Resolved on first use: the Worker makes its verifier at import time, before any
        # request, and nothing JS needs to exist until a token is checked.
        self._subtle = subtle
        self._max_keys = max_keys
        self._keys: OrderedDict[tuple, Any] = OrderedDict()
        self._verify_params: dict[str, Any] = {}

    async def verify(
        self, alg: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes
    ) -> bool:
        """True when ``signature`` is ``jwk``'s signature over ``signing_input`` under ``alg``;
        False when it is not; ``UnsupportedKey`` when the key or algorithm cannot be used."""
        key = await self._key(alg, jwk)
        params = self._verify_params.get(alg)
        if params is None:
            params = self._verify_params[alg] = _js_object(_ALGORITHMS[alg][4])
        try:
            verified = await self._crypto().verify(
                params, key, to_js(signature), to_js(signing_input)
            )
        except JsException:
            # WebCrypto answers false for a wrong signature; an exception here means input it
            # could not even parse, which is no valid signature either.
            return False
        return bool(verified)

    @property
    def cached_keys(self) -> int:
        """How many imported keys are held (for tests and diagnostics)."""
        return len(self._keys)

    def _crypto(self):
        if self._subtle is None:
            self._subtle = js.crypto.subtle
        return self._subtle

    async def _key(self, alg: str, jwk: Mapping[str, Any]):
        public = public_members(alg, jwk)
        cache_key = (jwk.get("kid"), alg, *public.values())
        key = self._keys.get(cache_key)
        if key is not None:
            self._keys.move_to_end(cache_key)
            return key
        try:
            key = await self._crypto().importKey(
                "jwk",
                _js_object(public),
                _js_object(_ALGORITHMS[alg][3]),
                False,
                to_js(["verify"]),
            )
        except JsException as exc:
            # Malformed numbers, a point off the curve, or no Ed25519 on this runtime.
            raise UnsupportedKey(f"the {alg} key could not be imported ({exc.name})") from None
        self._keys[cache_key] = key
        while len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)
        return key
