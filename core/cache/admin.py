"""The cache's admin routes, open only to the holder of ``EDGERELAY_ADMIN_KEY``:

- ``GET /v1/cache/stats``: hits, misses, hit rate, and entries and bytes where the store knows;
- ``DELETE /v1/cache``: every entry, or one namespace's (``?namespace=client:jwt:alice``);
- ``DELETE /v1/cache/{key}``: one entry, by the ``x-edgerelay-cache-key`` it was served with.

The key travels as ``Authorization: Bearer <key>`` and is compared in constant time, before
any client credential is looked at. With no admin key set, the routes do not exist (404).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from ..errors import GatewayError
from ..http import Request, Response
from ..responses import JSON
from ..safejson import dumps
from .keys import is_key
from .settings import CacheSettings
from .store import CacheStore, CacheUnavailable

PREFIX = "/v1/cache"


def is_admin_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


async def handle_admin(
    request: Request, settings: CacheSettings, store: CacheStore | None
) -> Response:
    """Answer one admin request (the path is under ``/v1/cache``)."""
    if settings.admin_key is None:
        raise GatewayError(404, f"Unknown route: {request.method} {request.path}")
    if not _admin(request.headers, settings.admin_key):
        raise GatewayError(
            401,
            "The cache admin routes need `Authorization: Bearer <EDGERELAY_ADMIN_KEY>`.",
            type="authentication_error",
            code="invalid_admin_key",
        )
    path = request.path
    if path == PREFIX + "/stats":
        _method(request, "GET")
        return await _answer(store, _stats)
    if path == PREFIX:
        _method(request, "DELETE")
        namespace = _query(request.query).get("namespace")
        if namespace == "":
            raise GatewayError(400, "`namespace` must not be empty.", param="namespace")
        return await _answer(store, lambda s: _invalidate(s, namespace))
    key = path[len(PREFIX) + 1 :]
    if not is_key(key):
        raise GatewayError(
            404, "Unknown cache key: keys are 64 lower-case hex digits.", code="unknown_key"
        )
    _method(request, "DELETE")
    return await _answer(store, lambda s: _delete(s, key))


async def _stats(store: CacheStore) -> Response:
    return Response(200, [JSON], dumps(await store.stats()))


async def _invalidate(store: CacheStore, namespace: str | None) -> Response:
    await store.invalidate(namespace)
    return Response(200, [JSON], dumps({"invalidated": namespace or "*"}))


async def _delete(store: CacheStore, key: str) -> Response:
    found = await store.delete(key)
    return Response(200, [JSON], dumps({"deleted": key, "found": found}))


async def _answer(store: CacheStore | None, action) -> Response:
    if store is None:
        raise GatewayError(
            503,
            "The cache has no store here (on the Worker: bind EDGERELAY_CACHE_KV).",
            type="service_unavailable",
            code="cache_unavailable",
        )
    try:
        return await action(store)
    except CacheUnavailable as exc:
        raise GatewayError(
            503, f"The cache store is unavailable: {exc}", code="cache_unavailable"
        ) from None


def _admin(headers: Mapping[str, str], admin_key: str) -> bool:
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    given = value.strip() if scheme.lower() == "bearer" else ""
    # Constant time over the bytes: how much of a guess matched must not show in the timing.
    return hmac.compare_digest(given.encode(), admin_key.encode())


def _method(request: Request, allowed: str) -> None:
    if request.method != allowed and not (allowed == "GET" and request.method == "HEAD"):
        raise GatewayError(
            405,
            f"{request.method} is not allowed on {request.path}; use {allowed}.",
            headers=(("allow", "GET, HEAD" if allowed == "GET" else allowed),),
        )


def _query(query: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name:
            out.setdefault(_unquote(name), _unquote(value))
    return out


def _unquote(text: str) -> str:
    """Percent-decoding (and ``+`` as a space) for query values."""
    raw = text.replace("+", " ").encode()
    out, i = bytearray(), 0
    while i < len(raw):
        if raw[i : i + 1] == b"%" and i + 3 <= len(raw):
            try:
                out.append(int(raw[i + 1 : i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(raw[i])
        i += 1
    return out.decode("utf-8", "replace")
