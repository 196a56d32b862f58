"""CORS for browser callers: answer preflights, and mark responses readable by allowed origins.

``EDGERELAY_CORS_ORIGINS`` is ``*`` (any origin, the default: the gateway holds the keys, so the
page's origin is no secret to protect), or a comma-separated list of exact origins.
"""

from __future__ import annotations

from collections.abc import Mapping

from .http import Response

# Headers a page may read from our responses besides the CORS-safelisted ones.
_EXPOSE = (
    "x-request-id, request-id, retry-after, x-should-retry, x-ratelimit-limit-requests, "
    "x-ratelimit-remaining-requests, x-ratelimit-reset-requests, x-ratelimit-limit-tokens, "
    "x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens, x-edgerelay-repaired, "
    "x-edgerelay-request-id, x-edgerelay-cache, x-edgerelay-cache-key, age, "
    "x-edgerelay-attempts, x-edgerelay-target"
)
# DELETE: the cache's admin routes (a browser admin page calls them with the admin key).
_METHODS = "GET, POST, DELETE, OPTIONS"


class CorsPolicy:
    __slots__ = ("_any", "_origins")

    def __init__(self, origins: str = "*") -> None:
        names = [o.strip().rstrip("/") for o in origins.split(",") if o.strip()]
        self._any = "*" in names
        self._origins = frozenset(names)

    def allowed(self, origin: str | None) -> str | None:
        """The value for Access-Control-Allow-Origin, or None when not allowed."""
        if origin is None:
            return None
        if self._any:
            return "*"
        return origin if origin in self._origins else None

    def preflight(self, headers: Mapping[str, str]) -> Response:
        allow = self.allowed(headers.get("origin"))
        if allow is None:
            return Response(403, [("vary", "origin")])
        out = [
            ("access-control-allow-origin", allow),
            ("access-control-allow-methods", _METHODS),
            ("access-control-max-age", "86400"),
            ("vary", "origin"),
        ]
        requested = headers.get("access-control-request-headers")
        if requested:
            out.append(("access-control-allow-headers", requested))
        return Response(204, out)

    def decorate(self, response: Response, headers: Mapping[str, str]) -> Response:
        allow = self.allowed(headers.get("origin"))
        if allow is not None:
            response.headers.append(("access-control-allow-origin", allow))
            response.headers.append(("access-control-expose-headers", _EXPOSE))
            if allow != "*":
                response.headers.append(("vary", "origin"))
        return response
