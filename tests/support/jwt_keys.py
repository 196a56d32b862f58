"""Real signing keys (RSA 2048, P-256, Ed25519) and tokens minted with them, for the CPython
verifier's tests and the bench; the JWKS they publish is served from a loopback server."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ALGORITHMS = ("RS256", "ES256", "EdDSA")


@dataclass
class SigningKey:
    alg: str
    kid: str
    private: object
    jwk: dict

    def mint(self, claims: dict, **header) -> str:
        return jwt.encode(
            claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **header}
        )


def make_key(alg: str, kid: str | None = None) -> SigningKey:
    kid = kid or f"{alg.lower()}-key"
    if alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    elif alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        jwk = OKPAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return SigningKey(alg, kid, private, {**jwk, "kid": kid, "use": "sig", "alg": alg})


def claims(sub: str = "user-1", lifetime: float = 600, **extra) -> dict:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + lifetime, **extra}


@dataclass
class JwksServer:
    """A loopback JWKS host: counts requests; ``down`` makes it answer 503."""

    keys: list[SigningKey]
    cache_control: str = "max-age=300"
    down: bool = False
    requests: int = 0
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/.well-known/jwks.json"

    def __enter__(self) -> JwksServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests += 1
                if owner.down:
                    self.send_response(503)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"keys": [k.jwk for k in owner.keys]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("cache-control", owner.cache_control)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
