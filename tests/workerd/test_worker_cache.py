"""The Worker's response cache under the real local runtime (workerd via wrangler dev) with a
real, locally simulated KV namespace bound as EDGERELAY_CACHE_KV: an identical second request,
JSON or stream, is answered from KV with the cache headers; the admin routes work there, with
the generations and the hit and miss counters in the EdgerelayLimits Durable Object; and
identical requests arriving together share one upstream call (a loopback upstream that counts
its calls and streams in lock-step), also when the client that started it leaves. A Responses
request passed through to OpenAI's own endpoint is cached the same way, read with the openai
SDK."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support import responses_wire
from tests.support.cache_wire import answer, text_of_chunks
from tests.support.loopback import WAIT, FakeUpstream, Reply, Seen

pytestmark = pytest.mark.workerd

ADMIN = "admin-key-for-workerd-tests-0123"
KV = '[[kv_namespaces]]\nbinding = "EDGERELAY_CACHE_KV"\nid = "edgerelay-cache-local"\n'
# The limits object holds the cache's generations and counters when it is bound.
DURABLE_OBJECT = """
[[durable_objects.bindings]]
name = "EDGERELAY_LIMITS"
class_name = "EdgerelayLimits"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["EdgerelayLimits"]
"""


WORDS = ("One", " call", " for", " all")
SSE = {"content-type": "text/event-stream"}


class CountingUpstream:
    """An OpenAI-style upstream on loopback that counts chat calls and streams ``WORDS`` in
    lock-step: its first chunk leaves at once, each next one after ``fake.release()``."""

    def __init__(self, fake: FakeUpstream) -> None:
        self.fake = fake
        self.calls = 0
        fake.handler = self.answer

    def answer(self, seen: Seen) -> Reply:
        self.calls += 1
        if seen.path.endswith("/responses"):  # OpenAI's own Responses API, all at once
            return Reply(200, SSE, responses_wire.answer(WORDS, user="alice"))
        return Reply(200, SSE, answer(WORDS), lockstep=True)


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as fake:
        yield CountingUpstream(fake)


@pytest.fixture(scope="module")
def worker(start_worker, upstream):
    return start_worker(
        vars={
            "EDGERELAY_ALLOW_ANONYMOUS": "true",
            "EDGERELAY_CACHE": "on",
            "OPENAI_BASE_URL": upstream.fake.url + "/v1",
        },
        secrets={"EDGERELAY_ADMIN_KEY": ADMIN, "OPENAI_API_KEY": "sk-upstream-test-key"},
        extra_toml=KV + DURABLE_OBJECT,
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


def test_a_passed_through_responses_request_is_answered_from_kv(worker, upstream):
    import openai

    client = openai.OpenAI(base_url=worker.url + "/v1", api_key="unused", max_retries=0)
    before = upstream.calls
    first = client.responses.with_raw_response.create(
        model="gpt-4.1-mini", input="edge", stream=True, user="alice"
    )
    assert first.headers["x-edgerelay-cache"] == "MISS"
    events = list(first.parse())
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == list(WORDS) and events[-1].response.user == "alice"
    as_json = client.responses.with_raw_response.create(model="gpt-4.1-mini", input="edge")
    assert as_json.headers["x-edgerelay-cache"] == "HIT"
    assert as_json.headers["x-edgerelay-cache-key"] == first.headers["x-edgerelay-cache-key"]
    assert "age" in as_json.headers
    response = as_json.parse()
    assert response.output_text == "".join(WORDS) and response.id == "resp_up1"
    assert response.user is None  # the first client's echo stays its own
    streamed = client.responses.create(model="gpt-4.1-mini", input="edge", stream=True)
    again = list(streamed)
    assert [e.delta for e in again if e.type == "response.output_text.delta"] == deltas
    assert again[-1].type == "response.completed" and again[-1].response.user is None
    assert upstream.calls - before == 1


def test_hits_and_misses_are_counted_in_the_durable_object(worker):
    url = worker.url + "/v1/chat/completions"
    admin = {"authorization": f"Bearer {ADMIN}"}
    with httpx.Client(timeout=WAIT) as client:
        before = client.get(worker.url + "/v1/cache/stats", headers=admin).json()
        statuses = [
            client.post(url, json=chat("counted")).headers["x-edgerelay-cache"] for _ in range(3)
        ]
        assert statuses == ["MISS", "HIT", "HIT"]
        after = client.get(worker.url + "/v1/cache/stats", headers=admin).json()
    assert after["counted_by"] == "durable object"
    assert (after["hits"] - before["hits"], after["misses"] - before["misses"]) == (2, 1)


def test_admin_invalidation_on_the_worker(worker):
    url = worker.url + "/v1/chat/completions"
    admin = {"authorization": f"Bearer {ADMIN}"}
    with httpx.Client(timeout=WAIT) as client:
        first = client.post(url, json=chat("to be invalidated"))
        assert client.get(worker.url + "/v1/cache/stats").status_code == 401
        stats = client.get(worker.url + "/v1/cache/stats", headers=admin)
        assert stats.status_code == 200 and stats.json()["store"] == "kv"
        assert stats.json()["counted_by"] == "durable object"
        assert client.delete(worker.url + "/v1/cache", headers=admin).status_code == 200
        after = client.post(url, json=chat("to be invalidated"))
        assert after.headers["x-edgerelay-cache"] == "MISS"
        assert after.headers["x-edgerelay-cache-key"] != first.headers["x-edgerelay-cache-key"]
    assert ADMIN not in worker.log()


class Frames:
    """One streaming answer read frame by frame (SSE events, without their blank line)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._raw = response.aiter_raw()
        self._pending = b""

    async def next(self) -> bytes:
        while b"\n\n" not in self._pending:
            self._pending += await asyncio.wait_for(self._raw.__anext__(), WAIT)
        frame, self._pending = self._pending.split(b"\n\n", 1)
        return frame + b"\n\n"


def stream_body(content: str) -> dict:
    return {
        **chat(content, model="gpt-4.1-mini", stream=True),
        "stream_options": {"include_usage": True},  # each upstream chunk reaches them as is
    }


async def shared_call(url: str, upstream: CountingUpstream, content: str, leader_leaves: bool):
    """The first request's upstream call is held after its first chunk; two identical requests
    arrive meanwhile and follow it. Each next chunk leaves the upstream only once every client
    still reading has read this one (lock-step). With ``leader_leaves`` the first client goes
    after its first chunk. Returns (headers, frames per client, upstream calls made)."""
    total = len(answer(WORDS))
    async with httpx.AsyncClient(timeout=WAIT) as client:
        before = upstream.calls

        async def open_stream() -> Frames:
            request = client.build_request("POST", url, json=stream_body(content))
            response = await client.send(request, stream=True)
            assert response.status_code == 200, await response.aread()
            return Frames(response)

        leader = await open_stream()
        received = [[await leader.next()]]
        streams = [leader, *await asyncio.gather(open_stream(), open_stream())]
        for stream in streams[1:]:
            received.append([await stream.next()])
        headers = [s.response.headers for s in streams]
        if leader_leaves:
            await leader.response.aclose()
            streams, received = streams[1:], received[1:]
        for _ in range(total - 1):
            upstream.fake.release()
            for got, stream in zip(received, streams, strict=True):
                got.append(await stream.next())
        for stream in streams:
            await stream.response.aclose()
        return headers, received, upstream.calls - before


def test_concurrent_identical_requests_share_one_upstream_call(worker, upstream):
    url = worker.url + "/v1/chat/completions"
    headers, received, calls = asyncio.run(shared_call(url, upstream, "shared", False))
    assert [h["x-edgerelay-cache"] for h in headers] == ["MISS", "HIT", "HIT"]
    assert len({h["x-edgerelay-cache-key"] for h in headers}) == 1
    assert calls == 1
    for got in received:
        assert got == received[0]
        assert text_of_chunks(got) == list(WORDS)
        assert got[-1] == b"data: [DONE]\n\n"


def test_the_shared_call_outlives_the_client_that_started_it(worker, upstream):
    url = worker.url + "/v1/chat/completions"
    upstream.fake.cancelled.clear()
    _, received, calls = asyncio.run(shared_call(url, upstream, "leader goes", True))
    assert calls == 1
    assert not upstream.fake.cancelled.is_set()  # the upstream call went on to the end
    for got in received:
        assert text_of_chunks(got) == list(WORDS)
        assert got[-1] == b"data: [DONE]\n\n"
    # Stored once complete: the next identical request is a hit with no upstream call.
    before = upstream.calls
    again = httpx.post(url, json=chat("leader goes", model="gpt-4.1-mini"), timeout=WAIT)
    assert again.headers["x-edgerelay-cache"] == "HIT"
    assert again.json()["choices"][0]["message"]["content"] == "".join(WORDS)
    assert upstream.calls == before
