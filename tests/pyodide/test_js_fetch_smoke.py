"""Loopback HTTP from inside Pyodide through Node's fetch and WHATWG streams.

Proves the pieces the Worker relay will stand on: js.fetch to the fake upstream
(upstream.mjs), request bodies and headers, and incremental reads from
``response.body.getReader()``. The lock-step route only releases event k+1 after
event k has reached us, so anything that buffers the body deadlocks and times out.
"""

import asyncio
import json

import js
from async_runner import timeout
from pyodide.ffi import JsException, to_js

UPSTREAM = js.EDGERELAY_TEST.upstream


def _init(**kw):
    # fetch() wants a plain JS object; to_js would otherwise build a Map.
    return to_js(kw, dict_converter=js.Object.fromEntries)


async def _next_event(reader, buf):
    """Read until one whole SSE event is buffered; return (event bytes, remainder)."""
    while b"\n\n" not in buf:
        chunk = await reader.read()
        assert not chunk.done, f"stream ended early, buffered {buf!r}"
        buf += chunk.value.to_bytes()
    event, _, rest = buf.partition(b"\n\n")
    return event, rest


@timeout(10)
async def test_echo_round_trip():
    resp = await js.fetch(
        f"{UPSTREAM}/echo?a=1", _init(method="POST", body="héllo", headers={"x-test": "yes"})
    )
    assert resp.status == 200
    got = json.loads(await resp.text())
    assert (got["method"], got["query"], got["body"]) == ("POST", {"a": "1"}, "héllo")
    assert got["headers"]["x-test"] == "yes"


@timeout(10)
async def test_sse_events_in_order():
    resp = await js.fetch(f"{UPSTREAM}/sse?n=5&done=1")
    assert resp.headers.get("content-type") == "text/event-stream"
    reader, buf, events = resp.body.getReader(), b"", []
    for _ in range(6):
        event, buf = await _next_event(reader, buf)
        events.append(event.decode())
    assert events == [f'data: {{"i":{i}}}' for i in range(5)] + ["data: [DONE]"]
    assert (await reader.read()).done


@timeout(10)
async def test_lockstep_chunks_arrive_one_by_one():
    n, sid = 5, "smoke"
    resp = await js.fetch(f"{UPSTREAM}/lockstep?n={n}&id={sid}&timeout=5000")
    assert resp.status == 200
    reader, buf = resp.body.getReader(), b""
    for k in range(n):
        event, buf = await _next_event(reader, buf)
        assert json.loads(event.removeprefix(b"data: ")) == {"id": sid, "k": k}
        # We hold event k and the server has not released k+1: true streaming.
        assert js.EDGERELAY_TEST.sent(sid) == k + 1
        assert buf == b""
        if k == n - 1:
            break
        if k % 2:  # both ack paths: the JS helper and the HTTP control endpoint
            assert js.EDGERELAY_TEST.ack(sid, k) == 204
        else:
            ack = await js.fetch(f"{UPSTREAM}/ack?id={sid}&k={k}", _init(method="POST"))
            assert ack.status == 204
    assert (await reader.read()).done


@timeout(10)
async def test_lockstep_catches_a_buffering_reader():
    # resp.text() waits for the whole body, which never comes without acks.
    resp = await js.fetch(f"{UPSTREAM}/lockstep?n=3&id=buffered&timeout=1500")
    whole_body = asyncio.ensure_future(resp.text())
    done, _ = await asyncio.wait([whole_body], timeout=0.3)
    assert not done, "lock-step route delivered a whole body without acks"
    assert js.EDGERELAY_TEST.sent("buffered") == 1
    try:
        await whole_body  # the server aborts after its 1.5 s ack timeout
    except JsException as exc:  # undici reports an aborted body as "TypeError: terminated"
        assert "terminated" in str(exc), repr(exc)
    else:
        raise AssertionError("body completed although no event was acknowledged")
