"""One structured log line per request (JSON), the same on every target.

The gateway fills in what it decides (route, provider, models, status, limit decision, usage,
error type); the adapter adds what only it sees (time to first byte, duration, bytes out) and
writes the line where its platform reads logs. Nothing in it comes from a body, a query string
or a header other than the request ids, so no credential can reach it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .limits.accounting import Account
    from .redact import Redactor

REQUEST_ID_HEADER = "x-edgerelay-request-id"
# One encoder for every line (json.dumps with options builds a new one per call).
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
# An incoming id is kept only when it cannot smuggle anything into a log line or a header.
_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")


def request_id(headers: Mapping[str, str], new_id: Callable[[], str]) -> str:
    """The caller's ``x-edgerelay-request-id`` when well formed, else a new one."""
    incoming = headers.get(REQUEST_ID_HEADER)
    if incoming and _WELL_FORMED.fullmatch(incoming):
        return incoming
    return new_id()


def with_request_id(response) -> list[tuple[str, str]]:
    """The response's headers with ``x-edgerelay-request-id`` (adapters send these)."""
    log = response.log
    if log is None or not log.request_id:
        return response.headers
    if any(name == REQUEST_ID_HEADER for name, _ in response.headers):
        return response.headers
    return [*response.headers, (REQUEST_ID_HEADER, log.request_id)]


def route_name(path: str) -> str:
    """The route without anything a caller chose: ``/gemini/v1beta/models/x:generateContent``
    is ``gemini``; our own routes are themselves; anything else is ``other``."""
    if path in ("/v1/chat/completions", "/v1/models", "/healthz", "/readyz", "/v1/sessions"):
        return path
    head = path.lstrip("/").split("/", 1)[0]
    return head if head.replace("-", "").replace("_", "").isalnum() else "other"


class RequestLog:
    """The fields of one request's line; ``None`` fields are written as null."""

    __slots__ = (
        "account",
        "attempts",
        "bytes_out",
        "cache",
        "client_id",
        "duration_ms",
        "error_type",
        "limit",
        "method",
        "model",
        "model_used",
        "level",
        "policy",
        "provider",
        "redactor",
        "repaired",
        "request_id",
        "route",
        "status",
        "time",
        "ttfb_ms",
        "upstream_request_id",
        "usage",
    )

    def __init__(self, request_id: str, time: float, method: str, path: str) -> None:
        self.request_id = request_id
        self.time = time
        self.method = method
        self.route = route_name(path)
        self.upstream_request_id: str | None = None
        self.client_id: str | None = None
        self.policy: str | None = None
        self.provider: str | None = None
        self.model: str | None = None
        self.model_used: str | None = None
        self.status = 0
        self.attempts = 0
        self.ttfb_ms: float | None = None
        self.duration_ms: float | None = None
        self.bytes_out: int | None = None
        self.usage: dict | None = None
        self.limit = "none"
        self.cache: str | None = None
        self.error_type: str | None = None
        # x-edgerelay-repaired: how the gateway changed the request to be answerable.
        self.repaired: str | None = None
        # EDGERELAY_LOG and the configured secrets' redactor, for ``finish`` (set by the gateway).
        self.level = "all"
        self.redactor: Redactor | None = None
        self.account: Account | None = (
            None  # limits' account: its charged usage is read when the line is made
        )

    def finished(
        self,
        level: str,
        redactor: Redactor | None,
        now: float,
        bytes_out: int | None,
        first: float | None = None,
    ) -> str | None:
        """The line once the adapter has sent the answer (``bytes_out``; ``now`` and ``first``,
        when its first byte left, on the clock of ``time``), cleaned of ``redactor``'s secrets;
        None when ``EDGERELAY_LOG`` (``level``) does not want it."""
        if not self.wanted(level):
            return None
        self.bytes_out = bytes_out
        self.duration_ms = round((now - self.time) * 1000, 2)
        if first is not None:
            self.ttfb_ms = round((first - self.time) * 1000, 2)
        return self.line(redactor.text if redactor else None)

    def finish(self, now: float, sent: int | None, first: float | None = None) -> str | None:
        """``finished`` with the gateway's own level and redactor."""
        return self.finished(self.level, self.redactor, now, sent, first)

    def wanted(self, level: str) -> bool:
        """Whether ``EDGERELAY_LOG`` (off | errors | all) asks for this line."""
        if level == "off":
            return False
        return level == "all" or self.status >= 400 or self.status == 0 or bool(self.error_type)

    def line(self, redact: Callable[[str], str] | None = None) -> str:
        usage = self.usage
        if usage is None and self.account is not None and self.account.charged is not None:
            usage = self.account.charged.as_log()
        record = {
            "time": round(self.time, 3),
            "request_id": self.request_id,
            "upstream_request_id": self.upstream_request_id,
            "client_id": self.client_id,
            "policy": self.policy,
            "method": self.method,
            "route": self.route,
            "provider": self.provider,
            "model": self.model,
            "model_used": self.model_used,
            "status": self.status,
            "attempts": self.attempts,
            "ttfb_ms": self.ttfb_ms,
            "duration_ms": self.duration_ms,
            "bytes_out": self.bytes_out,
            "usage": usage,
            "limit": self.limit,
            "cache": self.cache,
            "error_type": self.error_type,
        }
        if self.repaired:
            record["repaired"] = self.repaired
        text = _encode(record)
        return redact(text) if redact is not None else text
