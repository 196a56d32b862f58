"""The Worker's response cache under the real local runtime (workerd via wrangler dev) with a
real, locally simulated KV namespace bound as EDGERELAY_CACHE_KV: an identical second request,
JSON or stream, is answered from KV with the cache headers; the admin routes work there."""

from __future__ import annotations

import httpx
import pytest

from tests.support.loopback import WAIT

pytestmark = pytest.mark.workerd

ADMIN = "admin-key-for-workerd-tests-0123"
KV = '[[kv_namespaces]]\nbinding = "EDGERELAY_CACHE_KV"\nid = "edgerelay-cache-local"\n'


@pytest.fixture(scope="module")
def worker(start_worker):
    return start_worker(
        vars={"EDGERELAY_ALLOW_ANONYMOUS": "true", "EDGERELAY_CACHE": "on"},
        secrets={"EDGERELAY_ADMIN_KEY": ADMIN},
        extra_toml=KV,
    )


def chat(content: str, **extra) -> dict:
    return {"model": "mock/echo", "messages": [{"role": "user", "content": content}], **extra}


def test_an_identical_request_is_answered_from_kv(worker):
    url = worker.url + "/v1/chat/completions"
    with httpx.Client(timeout=WAIT) as client:
        first = client.post(url, json=chat("cached on the edge"))
        assert first.status_code == 200, first.text
        assert first.headers["x-edgerelay-cache"] == "MISS"
        key = first.headers["x-edgerelay-cache-key"]
        second = client.post(url, json=chat("cached on the edge"))
        assert second.headers["x-edgerelay-cache"] == "HIT"
        assert second.headers["x-edgerelay-cache-key"] == key
        assert "age" in second.headers
        assert second.json()["id"] == first.json()["id"]  # replayed from KV
        streamed = client.post(url, json=chat("cached on the edge", stream=True))
        assert streamed.headers["x-edgerelay-cache"] == "HIT"
        assert first.json()["id"] in streamed.text
        assert streamed.text.endswith("data: [DONE]\n\n")


def test_admin_invalidation_on_the_worker(worker):
    url = worker.url + "/v1/chat/completions"
    admin = {"authorization": f"Bearer {ADMIN}"}
    with httpx.Client(timeout=WAIT) as client:
        first = client.post(url, json=chat("to be invalidated"))
        assert client.get(worker.url + "/v1/cache/stats").status_code == 401
        stats = client.get(worker.url + "/v1/cache/stats", headers=admin)
        assert stats.status_code == 200 and stats.json()["store"] == "kv"
        assert client.delete(worker.url + "/v1/cache", headers=admin).status_code == 200
        after = client.post(url, json=chat("to be invalidated"))
        assert after.headers["x-edgerelay-cache"] == "MISS"
        assert after.headers["x-edgerelay-cache-key"] != first.headers["x-edgerelay-cache-key"]
    assert ADMIN not in worker.log()
