"""The identity provider's public keys (``EDGERELAY_JWKS_URL``), fetched through the Fetch seam
and cached; every decision here is a function of the injected clock.

- Keys are kept as long as the JWKS response's ``Cache-Control: max-age`` says, within a floor
  and a ceiling (a provider saying ``no-store`` is not fetched on every request; one saying a
  day still has its rotations picked up within the ceiling).
- A token with an unknown ``kid`` causes one re-fetch, at most once per ``REFETCH_INTERVAL``,
  so a flood of made-up ``kid``s cannot hammer the JWKS host.
- When the host is down or answers garbage, the keys already held keep working; with none held
  the caller gets ``JwksUnavailable`` (a 503 naming the JWKS, never a 500).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..fetch import Fetch, FetchError, FetchRequest

if TYPE_CHECKING:
    import asyncio

MIN_TTL = 60.0
MAX_TTL = 24 * 3600.0
DEFAULT_TTL = 600.0
REFETCH_INTERVAL = 30.0
# A JWKS is a few kB; refuse to buffer anything much larger.
MAX_JWKS_BYTES = 512 * 1024
FETCH_TIMEOUT = 10.0


class JwksUnavailable(Exception):
    """No keys are held and the JWKS could not be fetched."""


class JwksCache:
    """Keys by ``kid`` from one JWKS URL. ``get(kid)`` is the whole surface."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._keys: dict[str | None, dict[str, Any]] | None = None
        self._fresh_until = 0.0
        self._last_attempt: float | None = None
        # One download at a time: requests that arrive meanwhile wait for its keys instead of
        # finding none (or starting downloads of their own).
        self._lock: asyncio.Lock | None = None
        self.fetches = 0  # how many times the host was asked (for tests and the bench)

    async def get(
        self, kid: str | None, fetch: Fetch, clock: Callable[[], float]
    ) -> Mapping[str, Any] | None:
        """The JWK for ``kid`` (None when the token names none and the set has one key), or
        None when the provider has no such key. Raises ``JwksUnavailable``."""
        if self._wants_download(kid, clock()):
            if self._lock is None:
                import asyncio  # only once a JWKS is needed: it is slow to import

                self._lock = asyncio.Lock()
            async with self._lock:
                now = clock()
                if self._wants_download(kid, now):
                    await self._refresh(now, fetch)
        if self._keys is None:
            raise JwksUnavailable(self.url)
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _wants_download(self, kid: str | None, now: float) -> bool:
        if not self._may_refetch(now):
            return False  # asked too recently (maybe it failed): keep what we have
        if self._keys is None or now >= self._fresh_until:
            return True
        return kid not in self._keys and not (kid is None and len(self._keys) == 1)

    def _may_refetch(self, now: float) -> bool:
        return self._last_attempt is None or now - self._last_attempt >= REFETCH_INTERVAL

    async def _refresh(self, now: float, fetch: Fetch) -> None:
        previous, self._last_attempt = self._last_attempt, now
        self.fetches += 1
        try:
            fetched = await self._download(fetch)
        except BaseException:
            # The request that started it went away (its task cancelled): not a verdict on
            # the host, so the next caller downloads at once instead of waiting out the interval.
            self._last_attempt = previous
            raise
        if fetched is None:
            return  # host down or garbage: stale keys stay in use
        keys, ttl = fetched
        self._keys = keys
        self._fresh_until = now + ttl

    async def _download(
        self, fetch: Fetch
    ) -> tuple[dict[str | None, dict[str, Any]], float] | None:
        # Shared: callers that arrive meanwhile wait for it, so it is not aborted when the
        # client that started it leaves (a Worker would otherwise tie it to that request).
        request = FetchRequest(
            "GET", self.url, {"accept": "application/json"}, timeout=FETCH_TIMEOUT, shared=True
        )
        try:
            response = await fetch(request)
            try:
                if response.status != 200:
                    return None
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        return None
            finally:
                await response.aclose()
        except FetchError:
            return None
        keys = parse_jwks(body)
        if keys is None:
            return None
        return keys, cache_ttl(response.headers.get("cache-control"))


def parse_jwks(body: bytes) -> dict[str | None, dict[str, Any]] | None:
    """Signing keys by ``kid``; None when the document is not a JWKS."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        return None
    out: dict[str | None, dict[str, Any]] = {}
    for key in keys:
        if not isinstance(key, dict) or not isinstance(key.get("kty"), str):
            continue
        if key.get("use") not in (None, "sig"):
            continue  # an encryption key never verifies a token
        kid = key.get("kid")
        out[kid if isinstance(kid, str) else None] = key
    return out


def cache_ttl(cache_control: str | None) -> float:
    """Seconds to keep the keys: ``max-age`` (``s-maxage`` wins) clamped to the floor and the
    ceiling; ``no-cache``/``no-store`` count as the floor."""
    if not cache_control:
        return DEFAULT_TTL
    ages: dict[str, float] = {}
    for directive in cache_control.lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name in ("no-cache", "no-store"):
            return MIN_TTL
        if name in ("max-age", "s-maxage"):
            try:
                ages[name] = float(value.strip().strip('"'))
            except ValueError:
                continue
    age = ages.get("s-maxage", ages.get("max-age"))
    if age is None or age != age:
        return DEFAULT_TTL
    return min(MAX_TTL, max(MIN_TTL, age))
