"""The Worker's response cache on a fake Workers KV binding, inside real Pyodide through the real
SDK: a second identical request is a HIT from KV (JSON and stream), entries are written with an
expirationTtl KV accepts, invalidation bumps a generation held in KV, and with no binding the
Worker answers uncached (BYPASS)."""

import json

import js
from async_runner import timeout
from pyodide.code import run_js
from workerd_call import call_fetch, make_request, read_all
from workerd_call import make_env as workerd_env

ADMIN = "admin-key-for-kv-tests-0123"

FAKE_KV = """
(() => {
  const values = new Map();
  const puts = [];
  return {
    values,
    puts,
    async get(key, type) {
      if (!values.has(key)) return null;
      const value = values.get(key);
      if (type === "arrayBuffer") {
        const bytes = typeof value === "string" ? new TextEncoder().encode(value) : value;
        return bytes.slice().buffer;
      }
      return typeof value === "string" ? value : new TextDecoder().decode(value);
    },
    async put(key, value, options) {
      puts.push([key, options ? options.expirationTtl ?? null : null]);
      values.set(key, typeof value === "string" ? value : new Uint8Array(value));
    },
    async delete(key) {
      values.delete(key);
    },
  };
})()
"""


def env_with_kv(**settings):
    env = workerd_env(
        EDGERELAY_ALLOW_ANONYMOUS="true",
        EDGERELAY_CACHE="on",
        EDGERELAY_ADMIN_KEY=ADMIN,
        **settings,
    )
    kv = run_js(FAKE_KV)
    env.EDGERELAY_CACHE_KV = kv
    return env, kv


def chat(content="cache me", **extra):
    body = {"model": "mock/echo", "messages": [{"role": "user", "content": content}], **extra}
    return json.dumps(body)


def header(resp, name):
    value = resp.headers.get(name)
    return None if value is None else str(value)


@timeout(20)
async def test_second_identical_request_is_a_hit_from_kv():
    env, kv = env_with_kv()
    first, _ = await call_fetch(env, make_request(body=chat()))
    first_body = json.loads(await first.text())
    assert header(first, "x-edgerelay-cache") == "MISS"
    key = header(first, "x-edgerelay-cache-key")
    puts = [list(p) for p in kv.puts.to_py()]
    assert puts == [[f"edgerelay:cache:e:{key}", 3600]]

    second, _ = await call_fetch(env, make_request(body=chat()))
    assert header(second, "x-edgerelay-cache") == "HIT"
    assert header(second, "x-edgerelay-cache-key") == key
    assert header(second, "age") is not None
    assert json.loads(await second.text())["id"] == first_body["id"]  # replayed, not re-made

    streamed, ctx = await call_fetch(env, make_request(body=chat(stream=True)))
    assert header(streamed, "x-edgerelay-cache") == "HIT"
    raw = await read_all(streamed.body.getReader())
    assert first_body["id"].encode() in raw
    assert raw.endswith(b"data: [DONE]\n\n")
    assert b'"usage"' not in raw  # not asked for
    await ctx.settled()


@timeout(20)
async def test_a_short_ttl_is_stored_for_kvs_minimum():
    env, kv = env_with_kv(EDGERELAY_CACHE_TTL_MIN="1")
    headers = {"content-type": "application/json", "x-edgerelay-cache-ttl": "5"}
    resp, _ = await call_fetch(env, make_request(body=chat("short"), headers=headers))
    await resp.text()
    assert [list(p)[1] for p in kv.puts.to_py()] == [60]


@timeout(20)
async def test_invalidation_bumps_a_generation_in_kv():
    env, kv = env_with_kv()
    first, _ = await call_fetch(env, make_request(body=chat("gen")))
    await first.text()
    admin = {"authorization": f"Bearer {ADMIN}"}
    wiped, _ = await call_fetch(env, make_request("/v1/cache", method="DELETE", headers=admin))
    assert wiped.status == 200
    assert str(kv.values.get("edgerelay:cache:g:*")) == "1"
    after, _ = await call_fetch(env, make_request(body=chat("gen")))
    await after.text()
    assert header(after, "x-edgerelay-cache") == "MISS"
    assert header(after, "x-edgerelay-cache-key") != header(first, "x-edgerelay-cache-key")
    stats, _ = await call_fetch(env, make_request("/v1/cache/stats", method="GET", headers=admin))
    body = json.loads(await stats.text())
    assert (body["store"], body["misses"]) == ("kv", 2)
    refused, _ = await call_fetch(env, make_request("/v1/cache/stats", method="GET"))
    assert refused.status == 401


@timeout(20)
async def test_without_a_binding_the_worker_answers_uncached():
    env = workerd_env(EDGERELAY_ALLOW_ANONYMOUS="true", EDGERELAY_CACHE="on")
    for _ in range(2):
        resp, _ = await call_fetch(env, make_request(body=chat("no kv")))
        assert resp.status == 200
        assert header(resp, "x-edgerelay-cache") == "BYPASS"
        await resp.text()


def responses_events(words=("Hel", "lo"), end="response.completed", user=None):
    """An OpenAI Responses stream as its own /v1/responses sends it, one event per write."""

    def event(kind, n, **fields):
        data = json.dumps({"type": kind, "sequence_number": n, **fields})
        return f"event: {kind}\ndata: {data}\n\n"

    text = "".join(words)
    head = {"id": "resp_kv1", "object": "response", "status": "in_progress", "output": []}
    out = [event("response.created", 0, response=head)]
    out += [
        event("response.output_text.delta", k + 1, item_id="msg_1", output_index=0,
              content_index=0, delta=w)
        for k, w in enumerate(words)
    ]  # fmt: skip
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    final = {**head, "status": end.partition(".")[2], "output": [message], "user": user}
    if end == "response.failed":
        final["error"] = {"code": "server_error", "message": "broke"}
    final["usage"] = {"input_tokens": 2, "output_tokens": 2, "total_tokens": 4}
    out.append(event(end, len(words) + 1, response=final))
    return out


def deltas(data):
    found = [json.loads(x[6:]) for x in data.split(b"\n") if x.startswith(b"data: {")]
    return [e["delta"] for e in found if e["type"] == "response.output_text.delta"]


def openai_upstream(events):
    """A loopback OpenAI upstream answering every request with ``events`` (counted)."""
    name = f"resp-kv-{len(events)}-{abs(hash(tuple(events))) % 10**8}"
    step = {"status": 200, "headers": {"content-type": "text/event-stream"}, "body": events}
    js.EDGERELAY_TEST.faults(name, json.dumps([step]))
    return f"{js.EDGERELAY_TEST.upstream}/faults/{name}/v1", name


@timeout(20)
async def test_a_passed_through_responses_request_is_a_hit_from_kv():
    base, name = openai_upstream(responses_events(("Hel", "lo", " kv"), user="alice"))
    env, kv = env_with_kv(OPENAI_BASE_URL=base, OPENAI_API_KEY="sk-up")
    ask = {"model": "gpt-4.1-mini", "input": "cache me", "stream": True, "user": "alice"}
    first, ctx = await call_fetch(env, make_request("/v1/responses", body=json.dumps(ask)))
    assert header(first, "x-edgerelay-cache") == "MISS"
    live = await read_all(first.body.getReader())
    await ctx.settled()
    key = header(first, "x-edgerelay-cache-key")
    assert [list(p) for p in kv.puts.to_py()] == [[f"edgerelay:cache:e:{key}", 3600]]

    plain = {"model": "gpt-4.1-mini", "input": "cache me"}
    hit, _ = await call_fetch(env, make_request("/v1/responses", body=json.dumps(plain)))
    assert header(hit, "x-edgerelay-cache") == "HIT"
    assert header(hit, "x-edgerelay-cache-key") == key
    answer = json.loads(await hit.text())
    assert answer["id"] == "resp_kv1" and answer["status"] == "completed"
    assert answer["output"][0]["content"][0]["text"] == "Hello kv"
    assert answer["user"] is None  # the first client's echo stays its own

    again, ctx = await call_fetch(
        env, make_request("/v1/responses", body=json.dumps({**plain, "stream": True}))
    )
    assert header(again, "x-edgerelay-cache") == "HIT"
    replayed = await read_all(again.body.getReader())
    await ctx.settled()
    assert b"alice" in live and b"alice" not in replayed  # each client's own echo
    assert deltas(replayed) == deltas(live) == ["Hel", "lo", " kv"]
    assert js.EDGERELAY_TEST.faultsSeen(name) == 1


@timeout(20)
async def test_a_failed_responses_stream_is_not_stored_in_kv():
    base, name = openai_upstream(responses_events(("x",), end="response.failed"))
    env, kv = env_with_kv(OPENAI_BASE_URL=base, OPENAI_API_KEY="sk-up")
    ask = json.dumps({"model": "gpt-4.1-mini", "input": "fails", "stream": True})
    for _ in range(2):
        resp, ctx = await call_fetch(env, make_request("/v1/responses", body=ask))
        assert header(resp, "x-edgerelay-cache") == "MISS"
        assert b"response.failed" in await read_all(resp.body.getReader())
        await ctx.settled()
    assert kv.puts.to_py() == []
    assert js.EDGERELAY_TEST.faultsSeen(name) == 2
