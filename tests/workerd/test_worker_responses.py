"""Stored /v1/responses answers on the Worker under the real local runtime: with EDGERELAY_LIMITS
bound, the gateway keeps them in Durable Objects (SQLite storage, one object per client), not in
the isolate's memory, and a previous_response_id or item_reference resolves from there, a
record kept in many parts included (Cloudflare's SQLite holds at most 2 MB in one value; the
local runtime does not refuse more, so the CPython tests hold SQLite to that limit); without the
binding the answers go out and a reference is a 503 in OpenAI's shape naming the binding."""

from __future__ import annotations

import httpx
import pytest

from tests.support.loopback import WAIT
from tests.workerd.test_worker_limits import BINDING

pytestmark = pytest.mark.workerd

VARS = {"EDGERELAY_ALLOW_ANONYMOUS": "true", "EDGERELAY_MAX_BODY_BYTES": str(8 * 1024 * 1024)}
ALICE = {"authorization": "Bearer alice-0123456789"}


@pytest.fixture(scope="module")
def bound(start_worker):
    return start_worker(vars=VARS, extra_toml=BINDING)


@pytest.fixture(scope="module")
def unbound(start_worker):
    return start_worker(vars=VARS)


def first_turn_and_follow_up(client, url):
    """A first turn (answered 200), then a turn naming it: (first answer, second body, its
    response)."""
    first = client.post(url, json={"model": "mock/echo", "input": "first turn"}, headers=ALICE)
    assert first.status_code == 200, first.text
    answer = first.json()
    follow = {"model": "mock/echo", "input": "again", "previous_response_id": answer["id"]}
    return answer, follow, client.post(url, json=follow, headers=ALICE)


def test_references_resolve_from_the_durable_object(bound):
    url = bound.url + "/v1/responses"
    with httpx.Client(timeout=WAIT * 4) as client:
        answer, follow, again = first_turn_and_follow_up(client, url)
        assert again.status_code == 200, again.text
        assert again.json()["previous_response_id"] == answer["id"]
        item = {"type": "item_reference", "id": answer["output"][0]["id"]}
        items = [item, {"role": "user", "content": "more"}]
        referenced = client.post(url, json={"model": "mock/echo", "input": items}, headers=ALICE)
        assert referenced.status_code == 200, referenced.text
        unknown = [{**item, "id": "msg_unknown"}, items[1]]
        missing = client.post(url, json={"model": "mock/echo", "input": unknown}, headers=ALICE)
        assert missing.status_code == 400 and missing.json()["error"]["param"] == "input[0].id"
        other = client.post(url, json=follow, headers={"authorization": "Bearer bob-0123456789"})
        assert other.status_code == 400
        assert other.json()["error"]["param"] == "previous_response_id"


def test_a_record_past_the_deployed_value_limit_resolves_in_parts(bound):
    url = bound.url + "/v1/responses"
    long_text = "é" * 1_200_000  # 2.4 MB in UTF-8: its item alone is past one deployed value
    with httpx.Client(timeout=WAIT * 8) as client:
        first = client.post(url, json={"model": "mock/echo", "input": long_text}, headers=ALICE)
        assert first.status_code == 200, first.text[:300]
        answer = first.json()
        assert answer["output"][0]["content"][0]["text"] == long_text
        follow = {"model": "mock/echo", "input": "and", "previous_response_id": answer["id"]}
        again = client.post(url, json=follow, headers=ALICE)
        assert again.status_code == 200, again.text[:300]
        item = {"type": "item_reference", "id": answer["output"][0]["id"]}
        referenced = client.post(url, json={"model": "mock/echo", "input": [item]}, headers=ALICE)
        assert referenced.status_code == 200, referenced.text[:300]


def test_without_the_binding_a_reference_is_a_503_naming_it(unbound):
    url = unbound.url + "/v1/responses"
    with httpx.Client(timeout=WAIT * 4) as client:
        _, _, again = first_turn_and_follow_up(client, url)
        assert again.status_code == 503, again.text
        error = again.json()["error"]
        assert error["code"] == "store_unavailable" and "EDGERELAY_LIMITS" in error["message"]
