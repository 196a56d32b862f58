"""What client identity adds per request, and why the CPython verifier uses PyJWT.

1. Per credential kind, the CPU time ``Gateway.handle`` spends on one non-streamed ``mock/echo``
   chat request, minus the same request with identity off: the cost identity adds on the local
   server. "cached" repeats one token (the verified-token cache answers); "uncached" clears
   that cache before each request (the JWKS itself stays cached, as in a running gateway).
   Target: at most 0.05 ms added with a cached token.
2. PyJWT against joserfc, the two maintained libraries the verifier could use: import time in a
   fresh interpreter (the Lambda's cold start pays it when EDGERELAY_JWKS_URL is set) and the
   time of one signature check per algorithm, each at its lowest public level.

Bounded by count; prints figures only, nothing here is a test.
Usage: python bench/identity_bench.py [--requests N]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgerelay.core import Gateway, Request, load_config  # noqa: E402
from edgerelay.core.identity.cache import VerifiedTokens  # noqa: E402
from edgerelay.core.identity.tokens import mint_hs256  # noqa: E402
from edgerelay.transports.signatures import CryptographyVerifier  # noqa: E402
from tests.support.drive import drive  # noqa: E402
from tests.support.fake_fetch import FakeFetch, FakeResponse  # noqa: E402
from tests.support.jwt_keys import ALGORITHMS, claims, make_key  # noqa: E402

TARGET_MS = 0.05
JWKS_URL = "https://idp.example/.well-known/jwks.json"
SECRET = "bench-secret-0123456789abcdef0123456789"
CLIENT_KEY = "bench-client-key-0123456789"
BODY = json.dumps({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]})


def gateway(env: dict, keys=()) -> Gateway:
    jwks = json.dumps({"keys": [k.jwk for k in keys]}).encode()
    fetch = FakeFetch(lambda r: FakeResponse(200, {"cache-control": "max-age=86400"}, [jwks]))
    return Gateway(
        load_config(env),
        fetch,
        clock=time.time,
        new_id=lambda: "bench",
        verifier=CryptographyVerifier(),
        target="server",
    )


def per_request_ms(gw: Gateway, headers: dict, n: int, uncached: bool = False) -> float:
    body = BODY.encode()
    samples = []
    for _ in range(5):
        spent = 0.0
        for _ in range(n):
            if uncached:
                gw.auth.cache = VerifiedTokens()
            request = Request("POST", "/v1/chat/completions", "", headers, body)
            start = time.process_time()
            response = drive(gw.handle(request))
            spent += time.process_time() - start
            assert response.status == 200, response.body
        samples.append(spent / n * 1000)
    return min(samples)


def credential_costs(n: int) -> None:
    keys = {alg: make_key(alg) for alg in ALGORITHMS}
    env = {
        "EDGERELAY_JWKS_URL": JWKS_URL,
        "EDGERELAY_JWT_SECRET": SECRET,
        "EDGERELAY_CLIENT_KEYS": CLIENT_KEY,
        "EDGERELAY_TURNSTILE_SECRET": "bench-turnstile",
        "EDGERELAY_SESSION_SECRET": SECRET + "-session",
    }
    off = gateway({})
    gw = gateway(env, keys.values())
    session = mint_hs256(
        {**claims(), "iss": "edgerelay-session", "sub": "s1"}, (SECRET + "-session").encode()
    )
    kinds = [
        ("client key", CLIENT_KEY),
        ("JWT HS256", mint_hs256(claims(), SECRET.encode())),
        ("session", session),
        *((f"JWT {alg}", keys[alg].mint(claims())) for alg in ALGORITHMS),
    ]
    base = per_request_ms(off, {}, n)
    print(f"identity off: {base:.4f} ms per request (Gateway.handle, mock/echo, CPU)")
    print(f"{'credential':<14} {'cached ms':>10} {'uncached ms':>12}   (added to identity off)")
    for name, token in kinds:
        headers = {"authorization": f"Bearer {token}"}
        # The baseline is measured again next to each kind: the machine's speed drifts.
        cached = per_request_ms(gw, headers, n) - per_request_ms(off, {}, n)
        few = max(n // 10, 20)
        uncached = per_request_ms(gw, headers, few, uncached=True) - per_request_ms(off, {}, few)
        flag = "" if name == "client key" else ("  ok" if cached <= TARGET_MS else "  OVER")
        print(f"{name:<14} {cached:>10.4f} {uncached:>12.4f}{flag}")
    print(f"target: <= {TARGET_MS} ms added with a cached token")


IMPORTS = {
    "PyJWT": "import jwt.algorithms",
    "joserfc": "from joserfc.jws import JWSRegistry; from joserfc.jwk import RSAKey, ECKey, OKPKey",
}


def import_ms(statement: str, runs: int = 7) -> float:
    """CPU time (user + system) of a fresh interpreter running ``statement``, minus one that
    runs nothing: less at the mercy of a busy machine than wall time."""

    def cpu(code: str) -> float:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", code], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    cost = [cpu(statement) - cpu("pass") for _ in range(runs)]
    return statistics.median(cost) * 1000


def verify_us(n: int) -> dict[str, dict[str, float]]:
    from joserfc.jwk import ECKey, OKPKey, RSAKey
    from joserfc.jws import JWSRegistry
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    pyjwt = {
        "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
        "ES256": ECAlgorithm(ECAlgorithm.SHA256),
        "EdDSA": OKPAlgorithm(),
    }
    joserfc_keys = {"RS256": RSAKey, "ES256": ECKey, "EdDSA": OKPKey}
    out: dict[str, dict[str, float]] = {"PyJWT": {}, "joserfc": {}}
    for alg in ALGORITHMS:
        key = make_key(alg)
        head, body, sig = key.mint(claims()).split(".")
        message = f"{head}.{body}".encode()
        import base64

        signature = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        public = pyjwt[alg].from_jwk(key.jwk)
        jkey = joserfc_keys[alg].import_key(key.jwk)
        jalg = JWSRegistry.algorithms[alg]
        pyjwt_alg = pyjwt[alg]
        for name, check in (
            ("PyJWT", lambda a=pyjwt_alg, m=message, k=public, s=signature: a.verify(m, k, s)),
            ("joserfc", lambda a=jalg, m=message, k=jkey, s=signature: a.verify(m, s, k)),
        ):
            assert check(), (name, alg)
            start = time.perf_counter()
            for _ in range(n):
                check()
            out[name][alg] = (time.perf_counter() - start) / n * 1e6
    return out


def library_choice(n: int) -> None:
    print("\nverifier library: import (fresh interpreter, median) and one signature check")
    checks = verify_us(n)
    for name, statement in IMPORTS.items():
        figures = ", ".join(f"{alg} {us:.0f} µs" for alg, us in checks[name].items())
        print(f"{name:<8} import {import_ms(statement):6.1f} ms; verify {figures}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    credential_costs(args.requests)
    library_choice(max(args.requests // 10, 50))


if __name__ == "__main__":
    main()
