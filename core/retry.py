"""When an upstream attempt fails before the client got a byte: wait and retry, move on to the
next target of a fallback chain, or give up with the upstream's error.

Sans-IO, tenacity-style: each rule is a small pure function of the attempt (``is_retryable``,
``quota_exhausted``, ``asked_wait``, ``backoff``) and ``RetryPolicy.decide`` composes them into one
``Decision``. The caller supplies the time (``now``, ``deadline``, on its injected clock) and the
randomness (``random``), and does the sleeping and fetching itself, so every backoff and every
deadline edge is testable without waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

from . import safejson

# 408 request timeout, 409 Anthropic's conflict, 429 rate limit, 5xx, 529 Anthropic overloaded.
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class Attempt(NamedTuple):
    """What one upstream attempt came to, as far as the policy needs to know."""

    status: int | None = None  # the upstream's status, or None when no answer came
    headers: Mapping[str, str] = {}  # lower-case names; never mutated
    body: bytes = b""  # an excerpt of the error body (or the error event of a stream)
    error: str | None = None  # no answer: "connect", "timeout", "broken" (a description)


class Wait(NamedTuple):
    """Sleep this many seconds, then try the same target again."""

    seconds: float
    reason: str


class NextTarget(NamedTuple):
    """Stop trying this target; try the next one of the chain."""

    reason: str


class GiveUp(NamedTuple):
    """Answer the client with this attempt's error."""

    reason: str


Decision = Wait | NextTarget | GiveUp


class RetryPolicy(NamedTuple):
    """The retry settings of one target (global ones, or an alias's own)."""

    retries: int = 2  # retries after the first attempt: 2 means up to 3 attempts
    base: float = 0.5  # seconds; the backoff cap doubles from here on each retry
    max_backoff: float = 8.0  # seconds; the backoff cap never grows past this
    max_wait: float = 20.0  # seconds; a longer wait asked by the upstream is not waited
    fallback_on: frozenset[int] = frozenset()  # statuses that move on without retrying

    def decide(
        self,
        attempt: Attempt,
        *,
        number: int,
        now: float,
        deadline: float,
        random: Callable[[], float],
        has_next: bool,
    ) -> Decision:
        """What to do after failed attempt ``number`` (1-based, counted per target).

        ``now`` and ``deadline`` are on the same clock (wall-clock seconds: an HTTP-date
        Retry-After is compared with ``now``); ``random()`` returns a float in [0, 1)."""

        def move_on(reason: str) -> Decision:
            return NextTarget(reason) if has_next else GiveUp(reason)

        if quota_exhausted(attempt):
            # Waiting does not bring a spent quota back; another provider has its own.
            return move_on("quota exhausted")
        if not is_retryable(attempt):
            if attempt.status in self.fallback_on:
                return move_on(f"status {attempt.status} is in fallback_on")
            return GiveUp("not retryable")
        if number > self.retries:
            return move_on("retries exhausted")
        asked = asked_wait(attempt, now)
        if asked is not None and asked > self.max_wait:
            return move_on("the upstream asked for a longer wait than EDGERELAY_RETRY_MAX_WAIT")
        seconds = asked if asked is not None else backoff(number, self, random)
        if now + seconds >= deadline:
            return move_on("the wait would pass the deadline")
        return Wait(seconds, "asked by the upstream" if asked is not None else "backoff")


def is_retryable(attempt: Attempt) -> bool:
    """No answer at all (connection refused or reset, connect or first-byte timeout), or a
    status that says "try again"."""
    return attempt.status is None or attempt.status in RETRYABLE_STATUSES


def backoff(number: int, policy: RetryPolicy, random: Callable[[], float]) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(max_backoff, base * 2^(n-1))).
    Full jitter spreads clients that failed together, so they do not retry together."""
    cap = min(policy.max_backoff, policy.base * 2 ** min(number - 1, 62))
    return random() * cap


def asked_wait(attempt: Attempt, now: float) -> float | None:
    """The wait the upstream asked for, in seconds: ``retry-after-ms``, then ``Retry-After``
    (seconds or an HTTP-date), then Gemini's ``RetryInfo.retryDelay`` in the error body."""
    headers = attempt.headers
    value = headers.get("retry-after-ms")
    if value is not None:
        seconds = _number(value)
        if seconds is not None:
            return seconds / 1000
    value = headers.get("retry-after")
    if value is not None:
        seconds = _number(value)
        if seconds is None:
            seconds = _http_date(value, now)
        if seconds is not None:
            return seconds
    return _retry_info_delay(_error_object(attempt.body))


def quota_exhausted(attempt: Attempt) -> bool:
    """A 429 that says the account's quota is spent (OpenAI ``insufficient_quota``, a Gemini
    per-day quota): no wait short of tomorrow helps."""
    if attempt.status != 429 or not attempt.body:
        return False
    if b"insufficient_quota" in attempt.body:
        return True
    error = _error_object(attempt.body)
    for detail in _details(error):
        if str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            violations = detail.get("violations")
            for violation in violations if isinstance(violations, list) else ():
                if isinstance(violation, dict) and "PerDay" in str(violation.get("quotaId", "")):
                    return True
    return False


def _number(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None


def _http_date(value: str, now: float) -> float | None:
    from email.utils import parsedate_to_datetime  # only for this rare header form

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        import datetime

        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now)


def _error_object(body: bytes) -> dict | None:
    if not body:
        return None
    try:
        parsed = safejson.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(parsed, list) and parsed:  # Gemini's JSON-array stream wraps its error
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else None


def _details(error: dict | None) -> list[dict]:
    details = error.get("details") if error else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _retry_info_delay(error: dict | None) -> float | None:
    for detail in _details(error):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            # A protobuf Duration in JSON: "37s", "0.5s", "1.250s".
            if isinstance(delay, str) and delay.endswith("s"):
                return _number(delay[:-1])
    return None
