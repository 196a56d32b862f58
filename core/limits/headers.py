"""OpenAI's rate-limit headers, with its reset format (Go durations: ``1s``, ``6m0s``, ``17ms``)."""

from __future__ import annotations

import math

# The headers a limited route answers with; they replace the provider's, which describe the
# owner's whole account.
RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


def format_reset(seconds: float) -> str:
    """A duration as Go prints it, to the millisecond, as OpenAI's reset headers are written:
    ``0s``, ``250ms``, ``1s``, ``1.5s``, ``6m0s``, ``1h0m0s``."""
    ms = max(0, math.ceil(seconds * 1000 - 1e-6))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    whole, frac = divmod(ms, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0").rstrip(".") if frac else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def is_rate_limit_header(name: str) -> bool:
    """An upstream rate-limit header: not passed on where the gateway's own limits apply."""
    return name.startswith(("x-ratelimit-", "anthropic-ratelimit-"))
