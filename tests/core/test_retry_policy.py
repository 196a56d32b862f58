"""The retry policy alone: every decision from an attempt, a fixed clock and an injected random."""

import json

import pytest

from edgerelay.core.retry import (
    Attempt,
    GiveUp,
    NextTarget,
    RetryPolicy,
    Wait,
    asked_wait,
    backoff,
    quota_exhausted,
)

NOW = 1_760_000_000.0
POLICY = RetryPolicy()  # retries 2, base 0.5, max backoff 8, max wait 20


def decide(attempt, number=1, *, policy=POLICY, deadline=NOW + 900, rand=0.5, has_next=False):
    return policy.decide(
        attempt, number=number, now=NOW, deadline=deadline, random=lambda: rand, has_next=has_next
    )


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses_wait_with_jittered_backoff(status):
    assert decide(Attempt(status)) == Wait(0.25, "backoff")  # 0.5 * random 0.5


@pytest.mark.parametrize("error", ["connect", "timeout", "broken"])
def test_no_answer_at_all_is_retried(error):
    assert isinstance(decide(Attempt(None, error=error)), Wait)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 501])
def test_other_statuses_give_up_at_once(status):
    assert decide(Attempt(status), has_next=True) == GiveUp("not retryable")


def test_fallback_on_moves_a_non_retryable_status_to_the_next_target():
    policy = RetryPolicy(fallback_on=frozenset({400}))
    assert isinstance(decide(Attempt(400), policy=policy, has_next=True), NextTarget)
    assert isinstance(decide(Attempt(400), policy=policy, has_next=False), GiveUp)


def test_backoff_doubles_per_retry_up_to_the_cap_with_full_jitter():
    caps = [backoff(n, POLICY, lambda: 0.999999) for n in range(1, 8)]
    assert [round(c, 3) for c in caps] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff(3, POLICY, lambda: 0.0) == 0.0  # full jitter: anywhere from zero
    assert backoff(10_000, POLICY, lambda: 0.5) == 4.0  # no overflow on a huge count


def test_retries_are_counted_per_target_then_move_on():
    assert isinstance(decide(Attempt(503), 2), Wait)
    assert decide(Attempt(503), 3, has_next=True) == NextTarget("retries exhausted")
    assert decide(Attempt(503), 3) == GiveUp("retries exhausted")
    none = RetryPolicy(retries=0)
    assert decide(Attempt(503), 1, policy=none) == GiveUp("retries exhausted")


def test_retry_after_seconds_is_waited_exactly():
    assert decide(Attempt(429, {"retry-after": "3"})) == Wait(3.0, "asked by the upstream")


def test_retry_after_http_date_is_measured_from_the_injected_now():
    # NOW is 2025-10-09T08:53:20Z; the date below is 7 s later.
    attempt = Attempt(503, {"retry-after": "Thu, 09 Oct 2025 08:53:27 GMT"})
    assert decide(attempt) == Wait(7.0, "asked by the upstream")
    past = Attempt(503, {"retry-after": "Thu, 09 Oct 2025 08:00:00 GMT"})
    assert decide(past) == Wait(0.0, "asked by the upstream")


def test_retry_after_ms_wins_over_retry_after():
    attempt = Attempt(429, {"retry-after-ms": "1500", "retry-after": "2"})
    assert asked_wait(attempt, NOW) == 1.5


def test_a_garbled_retry_after_falls_back_to_backoff():
    for value in ("soon", "nan", "inf", ""):
        assert decide(Attempt(429, {"retry-after": value})) == Wait(0.25, "backoff")


def gemini_error(*details, status=429):
    return json.dumps(
        {
            "error": {
                "code": status,
                "message": "quota",
                "status": "RESOURCE_EXHAUSTED",
                "details": list(details),
            }
        }
    ).encode()


RETRY_INFO = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}


def test_gemini_retry_info_in_the_body_is_honoured():
    assert asked_wait(Attempt(429, {}, gemini_error(RETRY_INFO)), NOW) == 37.0
    half = {**RETRY_INFO, "retryDelay": "0.5s"}
    assert decide(Attempt(429, {}, gemini_error(half))) == Wait(0.5, "asked by the upstream")


def test_a_longer_asked_wait_than_max_wait_is_not_waited():
    attempt = Attempt(429, {}, gemini_error(RETRY_INFO))  # 37 s > 20 s
    assert isinstance(decide(attempt), GiveUp)
    assert isinstance(decide(attempt, has_next=True), NextTarget)
    patient = RetryPolicy(max_wait=60)
    assert decide(attempt, policy=patient) == Wait(37.0, "asked by the upstream")


def test_no_wait_runs_past_the_deadline():
    attempt = Attempt(429, {"retry-after": "5"})
    assert isinstance(decide(attempt, deadline=NOW + 4), GiveUp)
    assert isinstance(decide(attempt, deadline=NOW + 6), Wait)
    assert isinstance(decide(Attempt(503), deadline=NOW + 0.2, rand=0.5), GiveUp)  # 0.25 s


def test_openai_insufficient_quota_is_not_retried():
    body = json.dumps(
        {
            "error": {
                "message": "You exceeded your current quota",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            }
        }
    )
    attempt = Attempt(429, {"retry-after": "1"}, body.encode())
    assert quota_exhausted(attempt)
    assert decide(attempt) == GiveUp("quota exhausted")
    assert decide(attempt, has_next=True) == NextTarget("quota exhausted")


def test_gemini_daily_quota_is_not_retried_but_a_per_minute_one_is():
    def failure(quota_id):
        return {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaMetric": "generate_content_requests", "quotaId": quota_id}],
        }

    daily = Attempt(
        429,
        {},
        gemini_error(failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier"), RETRY_INFO),
    )
    assert quota_exhausted(daily)
    assert decide(daily) == GiveUp("quota exhausted")
    minute = Attempt(
        429,
        {},
        gemini_error(
            failure("GenerateRequestsPerMinutePerProjectPerModel"),
            {**RETRY_INFO, "retryDelay": "2s"},
        ),
    )
    assert decide(minute) == Wait(2.0, "asked by the upstream")


def test_bodies_that_are_not_json_are_only_statuses():
    for body in (b"<html>502 Bad Gateway</html>", b"\xff\xfe", b"[" * 5000, b'{"error": 3}'):
        assert decide(Attempt(502, {}, body)) == Wait(0.25, "backoff")
    assert not quota_exhausted(Attempt(503, {}, b"insufficient_quota"))  # only on a 429
