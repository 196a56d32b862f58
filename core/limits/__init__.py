"""Rate limits, token budgets and usage accounting: strategies and decisions (sans-IO), the one
store interface and the in-memory store. Redis and Durable Object stores live with their
targets."""

from . import wire
from .headers import RATE_LIMIT_HEADERS, format_reset, is_rate_limit_header
from .keys import client_keys, ip_key
from .limiter import ADMIT_UNLIMITED, Decision, Limiter, LimitRequest, Reservation
from .policy import LimitPolicy, LimitSettings, Price, parse_limit_settings
from .store import Adjustment, LimitStore, MemoryStore, Slot, StoreAnswer, StoreUnavailable, fits
from .stream_usage import IncludeUsageStripper, UsageMeter, with_include_usage
from .usage import Usage, estimate, from_answer
from .windows import Counter, Window, weighted

__all__ = [
    "ADMIT_UNLIMITED",
    "RATE_LIMIT_HEADERS",
    "Adjustment",
    "Counter",
    "Decision",
    "IncludeUsageStripper",
    "LimitPolicy",
    "LimitRequest",
    "LimitSettings",
    "LimitStore",
    "Limiter",
    "MemoryStore",
    "Price",
    "Reservation",
    "Slot",
    "StoreAnswer",
    "StoreUnavailable",
    "Usage",
    "UsageMeter",
    "Window",
    "client_keys",
    "estimate",
    "fits",
    "format_reset",
    "from_answer",
    "ip_key",
    "is_rate_limit_header",
    "parse_limit_settings",
    "weighted",
    "wire",
    "with_include_usage",
]
