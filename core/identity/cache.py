"""What identity keeps between requests: the JWKS and the tokens already verified.

Held by the loaded ``IdentitySettings``, so every ``Gateway`` built from one configuration shares
them, including the Worker's, which builds a Gateway per request but keeps its configuration for
the isolate's life.
"""

from __future__ import annotations

from typing import Any

from .jwks import JwksCache

CACHE_SIZE = 1024


class VerifiedTokens:
    """Bounded map of token hash → (identity, valid until); oldest entries leave first."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._entries: dict[bytes, tuple[Any, float]] = {}

    def get(self, digest: bytes, now: float) -> Any:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if now >= entry[1]:
            del self._entries[digest]
            return None
        return entry[0]

    def put(self, digest: bytes, identity: Any, until: float) -> None:
        if len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]
        self._entries[digest] = (identity, until)


class IdentityCaches:
    def __init__(self, jwks_url: str | None = None, size: int = CACHE_SIZE) -> None:
        self.jwks = JwksCache(jwks_url) if jwks_url else None
        self.tokens = VerifiedTokens(size)
