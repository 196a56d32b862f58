"""Errors the gateway itself produces, rendered in the error format of the API being spoken.

``GatewayError`` carries status and message; ``render`` turns it into the JSON body of one
"flavour": OpenAI (the gateway's own API), or a provider's native shape on its passthrough route
(the registry names each kind's shape), so each official SDK raises its usual exception.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .sse import encode_data

if TYPE_CHECKING:
    from .fetch import FetchError

Flavor = str  # an error shape: "openai", "anthropic" or "gemini"

# OpenAI's `type` strings by status, as its API uses them.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
# google.rpc status names by HTTP status.
_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    408: "DEADLINE_EXCEEDED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class GatewayError(Exception):
    """A request the gateway answers itself with an error status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        retry_after: float | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type
        self.retry_after = retry_after  # seconds, when the upstream said when to retry
        self.headers = headers  # extra response headers, e.g. Allow on a 405

    def to_dict(self, flavor: Flavor = "openai") -> dict:
        """The error as the JSON object of ``flavor``'s error format."""
        if flavor == "anthropic":
            kind = self.type or _ANTHROPIC_TYPES.get(self.status, "api_error")
            return {"type": "error", "error": {"type": kind, "message": self.message}}
        if flavor == "gemini":
            status = _GOOGLE_STATUS.get(self.status, "UNKNOWN")
            return {"error": {"code": self.status, "message": self.message, "status": status}}
        kind = self.type or _OPENAI_TYPES.get(self.status, "api_error")
        return {
            "error": {
                "message": self.message,
                "type": kind,
                "param": self.param,
                "code": self.code,
            }
        }

    def render(self, flavor: Flavor = "openai") -> bytes:
        """``to_dict`` as compact JSON bytes."""
        return json.dumps(self.to_dict(flavor), separators=(",", ":")).encode()


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> GatewayError:
    """A 400 naming the field at fault."""
    return GatewayError(400, message, param=param, code=code)


def not_configured(name: str, key_env: str) -> GatewayError:
    """503 for a provider whose key is required and missing, naming the variable to set."""
    return GatewayError(
        503,
        f"The {name} provider is not configured: set {key_env}.",
        code="provider_not_configured",
    )


def unreachable(name: str, exc: FetchError) -> GatewayError:
    """504 when the ``name`` upstream did not answer in time, 502 when it could not be reached."""
    if exc.timeout:
        return GatewayError(504, f"The {name} upstream did not answer in time.", code="timeout")
    return GatewayError(502, f"Could not reach the {name} upstream: {exc}", code="bad_gateway")


def stream_error_frame(error: GatewayError) -> bytes:
    """An OpenAI-style error inside an SSE stream, after a 200 was sent: the SDKs raise on it."""
    return encode_data(error.render("openai"))
