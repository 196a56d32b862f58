"""Admission and settlement: the decisions "admit", "refuse with retry-after N" and
"reserve / settle usage", over any ``LimitStore``.

The limiter builds the counters a request is checked against (from its policy and the window
strategies), asks the store once, and turns the answer into a decision: the 429 in OpenAI's
terms (``rate_limit_exceeded``, or ``insufficient_quota`` for a spent day budget, which SDKs are
told not to retry) with ``Retry-After``, and the ``x-ratelimit-*`` headers. It reads no clock:
``now`` is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from ..errors import GatewayError
from .headers import format_reset
from .policy import LimitPolicy, LimitSettings, Price
from .store import Adjustment, LimitStore, Slot, StoreAnswer, StoreUnavailable
from .usage import Usage, estimate
from .windows import Counter, Window, weighted

MINUTE = Window(60)
DAY = Window(86_400, "fixed")  # day budgets reset at 00:00 UTC: easy to explain to a user
# A refused stream slot frees when some stream ends, which nobody can know: ask to retry soon.
SLOT_RETRY_SECONDS = 1.0
# Budgets are counted in micro-dollars: a price per million tokens times tokens is exactly that.
MICRO = 1_000_000

_DAILY = frozenset({"tokens_per_day", "budget_usd_per_day"})
# The limits the x-ratelimit-* headers tell, and their headers' suffix.
_HEADER_LIMITS = tuple(
    (name, tuple(f"x-ratelimit-{part}-{suffix}" for part in ("limit", "remaining", "reset")))
    for name, suffix in (
        ("requests_per_minute", "requests"),
        ("tokens_per_minute", "tokens"),
        ("tokens_per_day", "tokens"),
    )
)
_WHAT = {
    "requests_per_minute": "requests per minute",
    "tokens_per_minute": "tokens per minute",
    "tokens_per_day": "tokens per day",
    "budget_usd_per_day": "budget per day (USD)",
    "concurrent_streams": "concurrent streams",
}


class LimitRequest(NamedTuple):
    keys: tuple[str, ...]  # from ``client_keys``; the first one's figures go in the headers
    policy: LimitPolicy
    model: str = ""  # the model used, for the price
    max_tokens: int | None = None  # as the request asks; else the policy's default is reserved
    input_bytes: int = 0  # the request body's size, for estimates
    stream: bool = False
    slot_id: str = ""


class Reservation(NamedTuple):
    """What an admission took, to be settled when the usage is known and released at the end."""

    counters: tuple[Counter, ...]
    slots: tuple[Slot, ...]
    reserved_tokens: int
    reserved_micro_usd: int
    price: Price | None
    input_bytes: int


class Decision(NamedTuple):
    admitted: bool
    headers: tuple[tuple[str, str], ...] = ()
    error: GatewayError | None = None
    reservation: Reservation | None = None
    outcome: str = "none"  # for the log line: none | admitted | refused | fail_open | unavailable


ADMIT_UNLIMITED = Decision(True)


class Limiter:
    def __init__(
        self,
        settings: LimitSettings,
        store: LimitStore | None,
        *,
        fail_open: bool = False,
        missing_store: str = "set EDGERELAY_STORE",
    ) -> None:
        self.settings = settings
        self.store = store
        self.fail_open = fail_open
        # What an operator must set when no store is there (differs per target).
        self.missing_store = missing_store
        self._shapes: dict[LimitPolicy, _Shape] = {}
        self._limited: dict[str, LimitPolicy | None] = {}  # ``policy`` by name

    def policy(self, name: str) -> LimitPolicy | None:
        """The policy ``name`` when it sets some limit, else None."""
        try:
            return self._limited[name]
        except KeyError:
            policy = self.settings.policies.get(name)
            found = policy if policy is not None and self._shape(policy).limited else None
            self._limited[name] = found
            return found

    def _shape(self, policy: LimitPolicy) -> _Shape:
        shape = self._shapes.get(policy)
        if shape is None:
            shape = self._shapes[policy] = _Shape(policy)
        return shape

    async def admit(self, request: LimitRequest, now: float) -> Decision:
        policy = request.policy
        shape = self._shape(policy)
        if not shape.limited:
            return ADMIT_UNLIMITED
        reserve = request.max_tokens if request.max_tokens is not None else policy.reserve_tokens
        price = (
            self.settings.price(request.model) if policy.budget_usd_per_day is not None else None
        )
        if policy.budget_usd_per_day is not None and price is None:
            return Decision(
                False,
                error=GatewayError(
                    403,
                    f"The model {request.model!r} has no price in EDGERELAY_CONFIG [prices], "
                    "so it cannot be charged to a budget.",
                    code="model_not_priced",
                ),
                outcome="refused",
            )
        micro = _cost(price, request.input_bytes // 4, reserve) if price else 0
        counters, slots = self._plan(shape, request, reserve, micro, now)
        if self.store is None:
            return self._unavailable(f"no counter store is configured: {self.missing_store}")
        try:
            answer = await self.store.admit(counters, slots, now)
        except StoreUnavailable as exc:
            return self._unavailable(f"the counter store is unreachable ({exc})")
        headers = _headers(shape, counters, answer, now)
        if not answer.admitted:
            return Decision(
                False,
                headers,
                self._refusal(counters, slots, answer, headers, now),
                outcome="refused",
            )
        reservation = Reservation._make(
            (
                counters,
                slots,
                reserve if shape.counts_tokens else 0,
                micro,
                price,
                request.input_bytes,
            )
        )
        return Decision._make((True, headers, None, reservation, "admitted"))

    def _plan(self, shape: _Shape, request: LimitRequest, reserve: int, micro: int, now: float):
        """The counters and slots an admission asks the store for: per client key, each limit
        of the policy in ``_Shape`` order (the first key's figures make the headers)."""
        minute = shape.minute.frame(now) if shape.per_minute else None
        day = DAY.frame(now) if shape.per_day else None
        amounts = (1, reserve, micro)  # by the limit's ``_Shape`` amount index
        counters: list[Counter] = []
        slots: list[Slot] = []
        make = Counter._make  # half the cost of Counter(...): this runs per request
        for key in request.keys:
            for name, limit, daily, amount in shape.limits:
                buckets, expires_at = day if daily else minute  # type: ignore[misc]
                counters.append(make((key, name, limit, amounts[amount], buckets, expires_at)))
            if request.stream and shape.streams is not None:
                slots.append(
                    Slot(key, shape.streams, request.slot_id, now + self.settings.slot_seconds)
                )
        return tuple(counters), tuple(slots)

    def _unavailable(self, why: str) -> Decision:
        if self.fail_open:
            return Decision(True, outcome="fail_open")
        error = GatewayError(
            503,
            f"Rate limits are configured but {why}. "
            "(EDGERELAY_STORE_FAIL_OPEN=true admits requests unlimited meanwhile.)",
            type="service_unavailable",
            code="limits_store_unavailable",
        )
        return Decision(False, error=error, outcome="unavailable")

    def _refusal(self, counters, slots, answer: StoreAnswer, headers, now: float) -> GatewayError:
        failed = []
        for counter, counts in zip(counters, answer.counts, strict=True):
            if weighted(counter, counts) + counter.amount > counter.limit:
                failed.append((_window_of(counter).retry_after(counter, counts, now), counter.name))
        for slot, open_slots in zip(slots, answer.open_slots, strict=True):
            if open_slots >= slot.limit:
                failed.append((SLOT_RETRY_SECONDS, "concurrent_streams"))
        if not failed:  # the store refused though its own figures fit: a race; retry at once
            failed.append((SLOT_RETRY_SECONDS, "requests_per_minute"))
        retry, name = max(failed)
        daily = any(n in _DAILY for _, n in failed)
        seconds = max(1, math.ceil(retry))
        extra = [("retry-after", str(seconds))]
        if daily:
            extra.append(("x-should-retry", "false"))
            message = (
                f"You exceeded your {_WHAT[next(n for _, n in failed if n in _DAILY)]} "
                f"limit; it resets in {format_reset(retry)}."
            )
        else:
            message = f"Rate limit reached for {_WHAT[name]}; retry after {seconds} s."
        return GatewayError(
            429,
            message,
            type="insufficient_quota" if daily else "requests",
            code="insufficient_quota" if daily else "rate_limit_exceeded",
            retry_after=seconds,
            headers=(*headers, *extra),
        )

    def charge(self, reservation: Reservation, usage: Usage | None, relayed_bytes: int) -> Usage:
        """What an answer is charged: the reported usage, or the estimate from the bytes
        relayed when none came (never zero)."""
        if usage is not None:
            return usage
        return estimate(reservation.input_bytes, relayed_bytes)

    async def settle(
        self, reservation: Reservation, usage: Usage | None, relayed_bytes: int, now: float
    ) -> Usage:
        """Charge what was used instead of what was reserved; return the usage charged (the
        reported one, or the estimate from the bytes relayed when none came)."""
        charged = self.charge(reservation, usage, relayed_bytes)
        adjustments = self._adjustments(reservation, charged)
        if adjustments and self.store is not None:
            try:
                await self.store.adjust(adjustments, now)
            except StoreUnavailable:
                pass  # the reservation stands: charged at most what was reserved
        return charged

    async def release(self, reservation: Reservation) -> None:
        """Give back the stream slots (every way a stream ends calls this once)."""
        if reservation.slots and self.store is not None:
            try:
                await self.store.release(reservation.slots)
            except StoreUnavailable:
                pass  # the slots expire on their own

    async def finish(self, reservation: Reservation, charged: Usage, now: float) -> None:
        """``settle`` to ``charged`` and ``release``, in one store call when the store offers
        it (``settle``: one round trip to Redis), nothing when nothing changes."""
        store = self.store
        adjustments = self._adjustments(reservation, charged)
        if store is None or not (adjustments or reservation.slots):
            return
        both = getattr(store, "settle", None)
        try:
            if both is not None:
                await both(adjustments, reservation.slots, now)
                return
            if adjustments:
                await store.adjust(adjustments, now)
        except StoreUnavailable:
            pass  # the reservation stands: charged at most what was reserved
        await self.release(reservation)

    def _adjustments(self, reservation: Reservation, charged: Usage) -> list[Adjustment]:
        adjustments = []
        for counter in reservation.counters:
            if counter.name in ("tokens_per_minute", "tokens_per_day"):
                delta = charged.total - reservation.reserved_tokens
            elif counter.name == "budget_usd_per_day" and reservation.price is not None:
                delta = (
                    _cost(reservation.price, charged.input, charged.output)
                    - reservation.reserved_micro_usd
                )
            else:
                continue
            if delta:
                adjustments.append(
                    Adjustment(counter.bucket_id(counter.buckets[0][0]), delta, counter.expires_at)
                )
        return adjustments


_FIXED_MINUTE = Window(60, "fixed")
_ONE, _RESERVE, _MICRO = 0, 1, 2  # what a limit counts: requests, reserved tokens, micro-USD


class _Shape:
    """A policy's limits as every admission uses them, worked out once per policy: which
    counters each client key gets, in what order, and which of the first key's counters the
    ``x-ratelimit-*`` headers tell (with their fixed parts written out)."""

    __slots__ = (
        "counts_tokens",
        "headers",
        "limited",
        "limits",
        "minute",
        "per_day",
        "per_minute",
        "streams",
    )

    def __init__(self, policy: LimitPolicy) -> None:
        self.limited = policy.limited
        self.counts_tokens = policy.counts_tokens
        self.streams = policy.concurrent_streams
        self.minute = Window(60, policy.window)  # type: ignore[arg-type]
        limits: list[tuple[str, int, bool, int]] = []  # (name, limit, daily, amount index)
        if policy.requests_per_minute is not None:
            limits.append(("requests_per_minute", policy.requests_per_minute, False, _ONE))
        if policy.tokens_per_minute is not None:
            limits.append(("tokens_per_minute", policy.tokens_per_minute, False, _RESERVE))
        if policy.tokens_per_day is not None:
            limits.append(("tokens_per_day", policy.tokens_per_day, True, _RESERVE))
        if policy.budget_usd_per_day is not None:
            budget = round(policy.budget_usd_per_day * MICRO)
            limits.append(("budget_usd_per_day", budget, True, _MICRO))
        self.limits = tuple(limits)
        self.per_minute = any(not daily for _, _, daily, _ in limits)
        self.per_day = any(daily for _, _, daily, _ in limits)
        index = {name: i for i, (name, *_) in enumerate(limits)}
        headers = []
        for name, (limit_header, remaining_header, reset_header) in _HEADER_LIMITS:
            if name not in index:
                continue
            if name == "tokens_per_day" and "tokens_per_minute" in index:
                continue  # one trio of token headers: the minute limit is the one SDKs pace by
            at = index[name]
            window = DAY if limits[at][2] else self.minute
            limit_pair = (limit_header, str(limits[at][1]))
            headers.append((at, limit_pair, remaining_header, reset_header, window))
        self.headers = tuple(headers)


def _headers(shape: _Shape, counters: Sequence[Counter], answer: StoreAnswer, now: float):
    """The ``x-ratelimit-*`` headers from what the store saw (and took, when admitted)."""
    out: list[tuple[str, str]] = []
    seen = answer.used  # what the store summed already (the memory store says)
    last: tuple | None = None
    reset_text = ""
    for at, limit_pair, remaining_header, reset_header, window in shape.headers:
        counter, counts = counters[at], answer.counts[at]
        used = seen[at] if seen else weighted(counter, counts)
        if answer.admitted:
            used += counter.amount
        # The request and token counters of one window usually reset together: work it once.
        resets = (window, counter.buckets[0][0], counts[0] > 0)
        if resets != last:
            last, reset_text = resets, format_reset(window.reset_after(counter, counts, now))
        out += (
            limit_pair,
            (remaining_header, str(max(0, math.floor(counter.limit - used)))),
            (reset_header, reset_text),
        )
    return tuple(out)


def _window_of(counter: Counter) -> Window:
    if counter.name in _DAILY:
        return DAY
    if len(counter.buckets) == 1:
        return _FIXED_MINUTE
    return MINUTE


def _cost(price: Price, input_tokens: int, output_tokens: int) -> int:
    """Micro-dollars, rounded up so a budget is never under-charged."""
    return math.ceil(price.input * input_tokens + price.output * output_tokens)
