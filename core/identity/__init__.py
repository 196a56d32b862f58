"""Client identity: which caller a request comes from (a JWT, a gateway session or a client
key) and which policy applies to it. Decided in core; public-key signatures go through the
``SignatureVerifier`` seam each target implements."""

from .verify import PUBLIC_KEY_ALGORITHMS, SignatureVerifier, UnsupportedKey

__all__ = ["PUBLIC_KEY_ALGORITHMS", "SignatureVerifier", "UnsupportedKey"]
