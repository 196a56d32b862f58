"""The Worker's ``SignatureVerifier`` (build/worker/webcrypto_verify.py) over Node's real
``crypto.subtle``, on tokens signed on CPython with ``cryptography`` (jws_vectors.json, written by
make_jws_vectors.py): RS256 with RSA 2048, ES256 with P-256, EdDSA with Ed25519."""

import base64
import json
from pathlib import Path

import js
from async_runner import timeout
from workerd_call import load_entry

load_entry()  # puts build/worker on sys.path, as the upload folder is laid out
import webcrypto_verify  # noqa: E402

from edgerelay.core.identity import UnsupportedKey  # noqa: E402

VECTORS = json.loads(Path(__file__).with_name("jws_vectors.json").read_text())["algorithms"]


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def parts(alg):
    """(right JWK, wrong JWK of the same type, signing input, signature) for ``alg``."""
    vector = VECTORS[alg]
    head, payload, signature = vector["token"].split(".")
    right, wrong = vector["jwks"]["keys"]
    return right, wrong, f"{head}.{payload}".encode(), unb64(signature)


class CountingSubtle:
    """Node's crypto.subtle, counting the imports and verifications asked of it."""

    def __init__(self):
        self.imports = self.verifies = 0

    async def importKey(self, *args):  # WebCrypto's name
        self.imports += 1
        return await js.crypto.subtle.importKey(*args)

    async def verify(self, *args):
        self.verifies += 1
        return await js.crypto.subtle.verify(*args)


async def refused(verifier, alg, jwk, signing_input=b"a.b", signature=b"x" * 64):
    """The message of the UnsupportedKey the verifier raises (fails if it answers instead)."""
    try:
        answer = await verifier.verify(alg, jwk, signing_input, signature)
    except UnsupportedKey as exc:
        return str(exc)
    raise AssertionError(f"{alg} with {jwk.get('kty')} was not refused (answered {answer})")


@timeout(20)
async def test_real_signatures_verify_for_every_algorithm():
    verifier = webcrypto_verify.WebCryptoVerifier()
    for alg in ("RS256", "ES256", "EdDSA"):
        right, _, signing_input, signature = parts(alg)
        assert await verifier.verify(alg, right, signing_input, signature) is True, alg
    assert len(parts("ES256")[3]) == 64  # JWS's raw r || s, the form WebCrypto takes too


@timeout(20)
async def test_wrong_signatures_are_false():
    verifier = webcrypto_verify.WebCryptoVerifier()
    for alg in ("RS256", "ES256", "EdDSA"):
        right, wrong, signing_input, signature = parts(alg)
        flipped = bytes([signature[0] ^ 1]) + signature[1:]
        tampered = signing_input[:-1] + (b"A" if signing_input[-1:] != b"A" else b"B")
        assert await verifier.verify(alg, wrong, signing_input, signature) is False, alg
        assert await verifier.verify(alg, right, signing_input, flipped) is False, alg
        assert await verifier.verify(alg, right, tampered, signature) is False, alg
        assert await verifier.verify(alg, right, signing_input, signature[:-1]) is False, alg
        assert await verifier.verify(alg, right, signing_input, b"") is False, alg


@timeout(20)
async def test_a_key_of_another_type_or_an_unknown_alg_is_refused():
    verifier = webcrypto_verify.WebCryptoVerifier()
    rsa, ec, ed = (parts(alg)[0] for alg in ("RS256", "ES256", "EdDSA"))
    for alg, jwk in [("RS256", ec), ("RS256", ed), ("ES256", rsa), ("ES256", ed), ("EdDSA", ec)]:
        assert "cannot check" in await refused(verifier, alg, jwk)
    for alg in ("HS256", "none", "RS512", "ES384", ""):
        assert "not supported" in await refused(verifier, alg, rsa)
    # A JWK that names its own algorithm binds it: an RS256 key is not an RS384 key.
    assert "is for" in await refused(verifier, "RS256", {**rsa, "alg": "RS384"})
    assert "signing key" in await refused(verifier, "RS256", {**rsa, "use": "enc"})
    assert "lacks" in await refused(verifier, "RS256", {k: v for k, v in rsa.items() if k != "n"})
    assert "lacks" in await refused(verifier, "ES256", {**ec, "y": 7})
    # Numbers that are no key: WebCrypto's import fails, which is a refusal, not a crash.
    assert "could not be imported" in await refused(verifier, "ES256", {**ec, "x": "AAAA"})
    assert "could not be imported" in await refused(verifier, "EdDSA", {**ed, "x": "AAAA"})
    assert verifier.cached_keys == 0  # nothing refused is kept


@timeout(20)
async def test_ed25519_keys_spelled_either_way_are_accepted():
    verifier = webcrypto_verify.WebCryptoVerifier()
    right, _, signing_input, signature = parts("EdDSA")
    for spelling in ("EdDSA", "Ed25519"):
        jwk = {**right, "alg": spelling}
        assert await verifier.verify("EdDSA", jwk, signing_input, signature) is True


@timeout(20)
async def test_each_key_is_imported_once_and_a_rotated_key_is_not_confused_with_the_old():
    subtle = CountingSubtle()
    verifier = webcrypto_verify.WebCryptoVerifier(subtle)
    right, wrong, signing_input, signature = parts("RS256")
    for _ in range(5):
        assert await verifier.verify("RS256", right, signing_input, signature)
    assert (subtle.imports, subtle.verifies) == (1, 5)
    # The same kid now serving other numbers (a rotation): a new import, and the old
    # signature does not verify against the new key.
    rotated = {**wrong, "kid": right["kid"]}
    assert not await verifier.verify("RS256", rotated, signing_input, signature)
    assert subtle.imports == 2
    assert await verifier.verify("RS256", right, signing_input, signature)
    assert subtle.imports == 2  # both kept


@timeout(20)
async def test_the_key_cache_is_bounded():
    verifier = webcrypto_verify.WebCryptoVerifier(max_keys=2)
    for alg in ("RS256", "ES256", "EdDSA"):
        right, wrong, signing_input, signature = parts(alg)
        assert await verifier.verify(alg, right, signing_input, signature)
        assert not await verifier.verify(alg, wrong, signing_input, signature)
    assert verifier.cached_keys == 2
