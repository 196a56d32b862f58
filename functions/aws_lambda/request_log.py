"""The request's JSON log line on stdout, where CloudWatch Logs reads it (one line per request,
``EDGERELAY_LOG``: off | errors | all)."""

from __future__ import annotations

import sys
import time


def write_log(
    log, gateway, bytes_out: int | None, status: int | None = None, first: float | None = None
) -> None:
    """Finish ``log`` (core.requestlog) with what the function saw and print its line:
    ``status`` is what the client got (an answer replaced by a time or size cut has its own),
    ``first`` the wall-clock time the first body byte went out."""
    if log is None:
        return
    if status is not None:
        log.status = status
    if not log.wanted(gateway.config.log_level):
        return
    now = time.time()
    log.bytes_out = bytes_out
    log.duration_ms = round((now - log.time) * 1000, 2)
    if first is not None:
        log.ttfb_ms = round((first - log.time) * 1000, 2)
    redactor = gateway.redactor
    sys.stdout.write(log.line(redactor.text if redactor else None) + "\n")
    sys.stdout.flush()
