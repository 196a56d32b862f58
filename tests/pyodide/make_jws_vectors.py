"""Writes tests/pyodide/jws_vectors.json: tokens signed on CPython (PyJWT, ``cryptography``) for the
WebCrypto verifier's tests inside Pyodide (test_webcrypto_verify.py). Pyodide's own crypto would
be the code under test checking itself; keys made here are an independent implementation.

    .venv/bin/python tests/pyodide/make_jws_vectors.py      # rewrite the file (new keys)

Per algorithm: the public JWK, a second key of the same type (a wrong key), a token, and the
token's claims (with an ``iat`` the tests inject as their clock).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tests.support.jwt_keys import ALGORITHMS, make_key  # noqa: E402

OUT = Path(__file__).with_name("jws_vectors.json")
IAT = 1_767_225_600  # 2026-01-01T00:00:00Z; the tests pass it in as the clock


def vectors() -> dict:
    out = {"iat": IAT, "algorithms": {}}
    for alg in ALGORITHMS:
        key = make_key(alg, kid=f"{alg.lower()}-1")
        other = make_key(alg, kid=f"{alg.lower()}-2")
        claims = {
            "sub": f"user-{alg.lower()}",
            "iss": "https://issuer.test/",
            "aud": "edgerelay",
            "iat": IAT,
            "exp": IAT + 3600,
        }
        out["algorithms"][alg] = {
            "jwks": {"keys": [key.jwk, other.jwk]},
            "token": key.mint(claims),
            "claims": claims,
        }
    return out


if __name__ == "__main__":
    OUT.write_text(json.dumps(vectors(), indent=1) + "\n")
    print(f"wrote {OUT}")
