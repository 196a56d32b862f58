"""Limits with an injected clock: window edges, sliding vs fixed, Retry-After, reset format,
reserve and settle, the estimate, fail-closed and fail-open, keys."""

from __future__ import annotations

import json

import pytest

from edgerelay.core.config import ConfigError
from edgerelay.core.limits import (
    Counter,
    Limiter,
    LimitPolicy,
    LimitRequest,
    LimitSettings,
    MemoryStore,
    Price,
    StoreUnavailable,
    Usage,
    Window,
    client_keys,
    format_reset,
    ip_key,
    parse_limit_settings,
)
from tests.support.drive import drive

T0 = 1_760_000_040.0  # the start of a minute (1_760_000_040 % 60 == 0)
MINUTE_START = T0 - (T0 % 60)


def limiter(store=None, fail_open=False, **policy):
    settings = LimitSettings({"default": LimitPolicy(**policy)}, {"*": Price(1.0, 2.0)})
    return Limiter(settings, store if store is not None else MemoryStore(), fail_open=fail_open)


def admit(lim, now, key="key:a", **request):
    policy = lim.settings.policies["default"]
    return drive(lim.admit(LimitRequest((key,), policy, **request), now))


def headers(decision) -> dict:
    return dict(decision.headers)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "1ms"),
        (0.25, "250ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.999, "59.999s"),
        (60, "1m0s"),
        (360, "6m0s"),
        (3600, "1h0m0s"),
        (3723.5, "1h2m3.5s"),
    ],
)
def test_reset_format_is_openais(seconds, text):
    assert format_reset(seconds) == text


def test_fixed_window_admits_the_limit_then_refuses_until_the_edge():
    lim = limiter(requests_per_minute=3, window="fixed")
    for i in range(3):
        decision = admit(lim, MINUTE_START + 10 + i)
        assert decision.admitted
        assert headers(decision)["x-ratelimit-remaining-requests"] == str(2 - i)
    refused = admit(lim, MINUTE_START + 20)
    assert not refused.admitted
    assert refused.error.status == 429
    assert refused.error.code == "rate_limit_exceeded"
    assert dict(refused.error.headers)["retry-after"] == "40"  # the window ends at +60
    assert headers(refused)["x-ratelimit-reset-requests"] == "40s"
    assert not admit(lim, MINUTE_START + 59.999).admitted
    assert admit(lim, MINUTE_START + 60).admitted  # a new window: whole again


def test_sliding_window_weights_the_previous_minute():
    lim = limiter(requests_per_minute=10, window="sliding")
    for _ in range(10):
        assert admit(lim, MINUTE_START + 50).admitted
    # 15 s into the next minute the previous one still weighs 0.75: 7.5 used, 2 more fit.
    next_minute = MINUTE_START + 60
    assert admit(lim, next_minute + 15).admitted
    assert admit(lim, next_minute + 15).admitted
    refused = admit(lim, next_minute + 15)
    assert not refused.admitted
    # 7.5 + 2 = 9.5; room for one more when 10*w + 2 <= 9, i.e. w <= 0.7: 18 s into the minute.
    assert dict(refused.error.headers)["retry-after"] == "3"
    assert admit(lim, next_minute + 18).admitted


def test_a_fixed_window_lets_a_burst_through_at_the_edge_where_sliding_does_not():
    fixed = limiter(requests_per_minute=5, window="fixed")
    sliding = limiter(requests_per_minute=5, window="sliding")
    for lim in (fixed, sliding):
        for _ in range(5):
            assert admit(lim, MINUTE_START + 59).admitted
    assert admit(fixed, MINUTE_START + 60.5).admitted
    assert not admit(sliding, MINUTE_START + 60.5).admitted


def test_sliding_retry_after_waits_for_the_roll_when_this_minute_is_full():
    window = Window(60)
    counter = Counter("k", "requests_per_minute", 4, 1, *window.frame(MINUTE_START + 30))
    # 4 in this minute: full until the next minute plus a quarter of it (4 * (1 - x) <= 3).
    assert window.retry_after(counter, (4.0, 0.0), MINUTE_START + 30) == pytest.approx(45.0)


def test_limits_of_one_key_do_not_touch_another():
    lim = limiter(requests_per_minute=1)
    assert admit(lim, T0, key="key:a").admitted
    assert not admit(lim, T0, key="key:a").admitted
    assert admit(lim, T0, key="key:b").admitted


def test_a_refusal_changes_no_counter():
    lim = limiter(requests_per_minute=5, tokens_per_minute=100)
    assert admit(lim, T0, max_tokens=60).admitted
    assert not admit(lim, T0, max_tokens=60).admitted  # tokens refuse: the request is not counted
    assert headers(admit(lim, T0, max_tokens=10))["x-ratelimit-remaining-requests"] == "3"


def test_tokens_reserved_then_settled_to_the_real_figure():
    lim = limiter(tokens_per_minute=1000, window="fixed")
    decision = admit(lim, T0, max_tokens=800)
    assert headers(decision)["x-ratelimit-remaining-tokens"] == "200"
    assert not admit(lim, T0, max_tokens=300).admitted
    charged = drive(lim.settle(decision.reservation, Usage(100, 50), 0, T0))
    assert charged == Usage(100, 50)
    assert headers(admit(lim, T0, max_tokens=300))["x-ratelimit-remaining-tokens"] == "550"


def test_a_request_without_max_tokens_reserves_the_policy_default():
    lim = limiter(tokens_per_minute=1000, window="fixed", reserve_tokens=700)
    assert headers(admit(lim, T0))["x-ratelimit-remaining-tokens"] == "300"


def test_no_usage_is_charged_an_estimate_from_bytes_never_zero():
    lim = limiter(tokens_per_day=10_000)
    decision = admit(lim, T0, max_tokens=5000, input_bytes=400)
    charged = drive(lim.settle(decision.reservation, None, 800, T0))
    assert charged == Usage(100, 200)
    nothing = admit(lim, T0, max_tokens=10, input_bytes=0)
    assert drive(lim.settle(nothing.reservation, None, 0, T0)).total >= 1


def test_an_exhausted_day_budget_is_insufficient_quota_and_not_to_be_retried():
    lim = limiter(tokens_per_day=1000)
    day_end = (T0 // 86400 + 1) * 86400
    assert admit(lim, T0, max_tokens=1000).admitted
    refused = admit(lim, T0, max_tokens=1)
    assert refused.error.code == "insufficient_quota"
    extra = dict(refused.error.headers)
    assert extra["x-should-retry"] == "false"
    assert extra["retry-after"] == str(int(day_end - T0))
    body = json.loads(refused.error.render())["error"]
    assert body["code"] == "insufficient_quota" and body["type"] == "insufficient_quota"


def test_budget_in_dollars_from_the_price_table():
    # $1 per million input, $2 per million output; a budget of $0.001 = 1000 micro-dollars.
    lim = limiter(budget_usd_per_day=0.001)
    decision = admit(lim, T0, model="m", max_tokens=400)  # reserves 800 micro-dollars
    assert decision.admitted
    assert not admit(lim, T0, model="m", max_tokens=200).admitted
    drive(lim.settle(decision.reservation, Usage(100, 100), 0, T0))  # 300 micro-dollars
    assert admit(lim, T0, model="m", max_tokens=300).admitted


def test_budget_refuses_a_model_without_price():
    settings = LimitSettings({"default": LimitPolicy(budget_usd_per_day=1.0)}, {"a": Price(1, 1)})
    lim = Limiter(settings, MemoryStore())
    decision = drive(lim.admit(LimitRequest(("k",), settings.policies["default"], "b"), T0))
    assert decision.error.status == 403 and decision.error.code == "model_not_priced"


def test_concurrent_stream_slots_are_released_and_expire():
    lim = limiter(concurrent_streams=2)
    first = admit(lim, T0, stream=True, slot_id="s1")
    assert admit(lim, T0, stream=True, slot_id="s2").admitted
    refused = admit(lim, T0, stream=True, slot_id="s3")
    assert refused.error.code == "rate_limit_exceeded"
    assert "concurrent streams" in refused.error.message
    assert admit(lim, T0, stream=False).admitted  # a JSON request takes no slot
    drive(lim.release(first.reservation))
    assert admit(lim, T0, stream=True, slot_id="s4").admitted
    # A crashed instance never releases: its slots stop counting after their lifetime.
    later = T0 + lim.settings.slot_seconds
    assert admit(lim, later, stream=True, slot_id="s5").admitted
    assert admit(lim, later, stream=True, slot_id="s6").admitted


class DownStore:
    async def admit(self, counters, slots, now):
        raise StoreUnavailable("connection refused")

    async def adjust(self, adjustments, now):
        raise StoreUnavailable("connection refused")

    async def release(self, slots):
        raise StoreUnavailable("connection refused")


def test_fail_closed_names_what_to_set_and_fail_open_admits():
    closed = limiter(store=DownStore(), requests_per_minute=1)
    decision = admit(closed, T0)
    assert decision.error.status == 503
    assert decision.error.code == "limits_store_unavailable"
    assert "EDGERELAY_STORE_FAIL_OPEN" in decision.error.message
    missing = Limiter(closed.settings, None, missing_store="bind EDGERELAY_LIMITS")
    assert "bind EDGERELAY_LIMITS" in admit(missing, T0).error.message
    opened = limiter(store=DownStore(), fail_open=True, requests_per_minute=1)
    assert admit(opened, T0).admitted and admit(opened, T0).outcome == "fail_open"


def test_no_limits_need_no_store():
    lim = Limiter(LimitSettings({"default": LimitPolicy()}), None)
    assert admit(lim, T0).admitted
    assert not lim.settings.enabled


def test_ipv6_is_keyed_by_its_64_and_sessions_by_both():
    assert (
        ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:ffff::9") == "ip:2001:db8:1:2::/64"
    )
    assert ip_key("2001:db8:1:3::1") != ip_key("2001:db8:1:2::1")
    assert ip_key("::ffff:203.0.113.7") == ip_key("203.0.113.7") == "ip:203.0.113.7"
    assert ip_key("not an ip") == ip_key(None) == "ip:unknown"
    assert client_keys(None, "203.0.113.7") == ("ip:203.0.113.7",)
    assert client_keys("session:s1", "203.0.113.7") == ("session:s1", "ip:203.0.113.7")
    assert client_keys("jwt:alice", "203.0.113.7") == ("jwt:alice",)


def test_a_new_session_does_not_reset_the_address_budget():
    lim = limiter(requests_per_minute=2)
    policy = lim.settings.policies["default"]
    for session in ("session:1", "session:2"):
        keys = client_keys(session, "198.51.100.9")
        assert drive(lim.admit(LimitRequest(keys, policy), T0)).admitted
    keys = client_keys("session:3", "198.51.100.9")
    assert not drive(lim.admit(LimitRequest(keys, policy), T0)).admitted


def test_memory_store_sweeps_expired_entries():
    store = MemoryStore(sweep_every=1)
    lim = limiter(store=store, requests_per_minute=5, window="fixed")
    for i in range(20):
        admit(lim, T0, key=f"key:{i}")
    assert len(store) == 20
    admit(lim, T0 + 3600, key="key:late")
    assert len(store) == 1


def test_limit_keys_parse_from_policies_and_bad_ones_are_named():
    settings = parse_limit_settings(
        {
            "policies": {
                "anonymous": {"requests_per_minute": 20, "models": ["x"], "limit_window": "fixed"},
                "default": {"tokens_per_day": 1000, "default_max_tokens": 256},
                "internal": {"budget_usd_per_day": 5},
            },
            "prices": {"gpt-*": {"input": 0.4, "output": 1.6}},
        }
    )
    assert settings.policies["anonymous"].requests_per_minute == 20
    assert settings.policies["anonymous"].window == "fixed"
    assert settings.policies["default"].reserve_tokens == 256
    assert settings.price("gpt-4.1-mini") == Price(0.4, 1.6)
    assert settings.enabled
    with pytest.raises(ConfigError) as err:
        parse_limit_settings({"policies": {"a": {"requests_per_minute": "ten"}}})
    assert err.value.setting == "EDGERELAY_CONFIG.policies.a.requests_per_minute"
    with pytest.raises(ConfigError) as err:
        parse_limit_settings({"policies": {"a": {"budget_usd_per_day": 1}}})
    assert "prices" in str(err.value)
