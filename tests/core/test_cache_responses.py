"""The cache's Responses stream type (core/cache/responses_stream.py), sans-IO: which recorded
streams are whole answers, their JSON form, each client's own echoed fields, and the entry
such a stream becomes."""

import json

import pytest

from edgerelay.core.cache import Entry, Recording
from edgerelay.core.cache.responses_stream import (
    NEUTRAL,
    EchoRewriter,
    echoes,
    forms,
    json_answer,
)
from edgerelay.core.errors import GatewayError
from tests.support import responses_wire as wire

ALICE = {"user": "alice", "safety_identifier": "sid-a", "metadata": {"who": "alice"}}


def final_of(data: bytes) -> dict:
    *_, last = [json.loads(x[6:]) for x in data.split(b"\n") if x.startswith(b"data: {")]
    return last


def test_a_completed_stream_is_kept_with_neutral_echoes_and_its_json_answer():
    batches = tuple(wire.answer(("Hel", "lo"), **ALICE))
    made = forms(batches)
    assert made is not None
    events, plain, answer = made
    assert plain == ()
    assert b"alice" not in b"".join(events) and b"alice" not in answer
    # Only the lifecycle events were rewritten: the rest are the very bytes recorded.
    assert events[2:-1] == batches[2:-1]
    assert len(events) == len(batches)
    parsed = json.loads(answer)
    assert parsed["id"] == "resp_up1" and parsed["status"] == "completed"
    assert parsed["user"] is None and parsed["metadata"] == {}
    assert parsed["output"][0]["content"][0]["text"] == "Hello"


@pytest.mark.parametrize(
    "stream",
    [
        wire.failed(),
        wire.answer()[:-1],  # no end
        [*wire.answer()[:5], wire.event("error", 5, code="x", message="boom", param=None)],
        [
            *wire.answer()[:-1],
            wire.event(
                "response.incomplete",
                10,
                response=wire.response("incomplete", "Hello there", reason="content_filter"),
            ),
        ],
    ],
    ids=["failed", "no-end", "error-event", "content-filter"],
)
def test_what_is_never_stored(stream):
    assert forms(tuple(stream)) is None


def test_a_stream_that_echoes_nothing_is_kept_byte_for_byte():
    batches = tuple(wire.answer())
    assert forms(batches)[0] == batches


def test_an_answer_at_its_output_limit_is_kept():
    assert forms(tuple(wire.answer(end="response.incomplete"))) is not None


def test_the_json_answer_carries_the_clients_own_echoes_or_the_upstreams_error():
    answer = json.loads(json_answer(wire.answer(**ALICE), NEUTRAL))
    assert answer["user"] is None and answer["safety_identifier"] is None
    mine = json.loads(json_answer(wire.answer(), echoes({"user": "bob"})))
    assert mine["user"] == "bob"
    with pytest.raises(GatewayError) as failed:
        json_answer(wire.failed(), NEUTRAL)
    assert failed.value.status == 502 and failed.value.message == "The model broke down."
    with pytest.raises(GatewayError) as cut:
        json_answer(wire.answer()[:-1], NEUTRAL)
    assert "before the answer was complete" in cut.value.message


def test_the_rewriter_holds_an_event_split_across_batches():
    whole = b"".join(wire.answer(**ALICE))
    rewriter = EchoRewriter(echoes({"user": "bob"}))
    out = b"".join(rewriter.feed(whole[i : i + 7]) for i in range(0, len(whole), 7))
    out += rewriter.finish()
    assert b"alice" not in out
    assert final_of(out)["response"]["user"] == "bob"
    assert final_of(out)["response"]["metadata"] == {}
    assert wire.text_of([out]) == ["Hel", "lo", " there"]


def test_echoes_of_a_request():
    assert echoes({}) == dict(NEUTRAL)
    assert echoes({"metadata": None, "user": "u"}) == {**NEUTRAL, "user": "u"}


def test_a_recording_of_a_responses_stream_becomes_an_entry_that_travels():
    recording = Recording(1 << 20, forms)
    for batch in wire.answer():
        recording.feed(batch)
    entry = recording.entry("k" * 64, "shared", 10.0, 60, "complete")
    assert entry is not None and entry.plain == ()
    assert Entry.decode(entry.encode()) == entry
    failed = Recording(1 << 20, forms)
    for batch in wire.failed():
        failed.feed(batch)
    # The observer calls response.failed an end ("complete"); the recording knows better.
    assert failed.entry("k" * 64, "shared", 10.0, 60, "complete") is None
    small = Recording(100, forms)
    for batch in wire.answer():
        small.feed(batch)
    assert small.entry("k" * 64, "shared", 10.0, 60, "complete") is None  # past its bound
