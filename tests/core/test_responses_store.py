"""The memory store of Responses API answers and the reference resolution over it: time to
live on an injected clock, the byte bound, client namespaces (standard library: also runs in
Pyodide)."""

import json

import pytest

from edgerelay.core.errors import GatewayError
from edgerelay.core.responses_api import store
from edgerelay.core.responses_api.items import decode_details, encode_details
from tests.support.drive import drive


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_their_ttl():
    clock = Clock()
    memory = store.MemoryResponseStore(clock, 10_000)
    drive(memory.put("ns", "resp_1", b"x", ttl=60))
    clock.now += 59.9
    assert drive(memory.get("ns", "resp_1")) == b"x"
    clock.now += 0.1
    assert drive(memory.get("ns", "resp_1")) is None
    assert memory.size == 0


def test_the_oldest_entries_go_first_to_stay_within_the_byte_bound():
    memory = store.MemoryResponseStore(Clock(), 100)
    for k in range(5):
        drive(memory.put("n", f"k{k}", b"v" * 30, ttl=60))  # 33 bytes each with the keys
    assert memory.size <= 100
    assert [drive(memory.get("n", f"k{k}")) is not None for k in range(5)] == [
        False,
        False,
        True,
        True,
        True,
    ]
    drive(memory.put("n", "huge", b"v" * 200, ttl=60))  # larger than the store: not kept
    assert drive(memory.get("n", "huge")) is None and drive(memory.get("n", "k4")) is not None


def test_rewriting_a_key_does_not_count_it_twice():
    memory = store.MemoryResponseStore(Clock(), 1000)
    drive(memory.put("n", "k", b"aaaa", ttl=60))
    drive(memory.put("n", "k", b"bb", ttl=60))
    assert memory.size == len("n") + len("k") + 2


def test_namespaces_are_apart_and_hold_no_credential():
    memory = store.MemoryResponseStore(Clock(), 1000)
    alice = store.namespace_of({"authorization": "Bearer alice-secret"})
    bob = store.namespace_of({"authorization": "Bearer bob"})
    assert alice != bob and "alice" not in alice
    assert store.namespace_of({}) == store.namespace_of({"authorization": ""})
    drive(memory.put(alice, "resp_1", b"x", ttl=60))
    assert drive(memory.get(bob, "resp_1")) is None


def test_resolve_puts_the_previous_conversation_first_and_replaces_references():
    memory = store.MemoryResponseStore(Clock(), 10_000)
    user = {"role": "user", "content": "hi"}
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
    response = {"id": "resp_1", "output": [answer]}
    drive(store.keep(memory, "n", 60, [("input", user)], response))
    assert json.loads(drive(memory.get("n", "msg_1"))) == answer
    items = [("input[0]", {"type": "item_reference", "id": "msg_1"}), ("input[1]", user)]
    resolved = drive(store.resolve(memory, "n", "resp_1", items))
    assert [item for _, item in resolved] == [user, answer, answer, user]
    assert [path for path, _ in resolved][-2:] == ["input[0]", "input[1]"]


@pytest.mark.parametrize(
    ("previous", "items", "param"),
    [
        ("resp_gone", [], "previous_response_id"),
        (None, [("input[3]", {"type": "item_reference", "id": "msg_gone"})], "input[3].id"),
        (None, [("input[0]", {"type": "item_reference", "id": 7})], "input[0].id"),
    ],
)
def test_unknown_ids_are_400s_naming_the_field(previous, items, param):
    memory = store.MemoryResponseStore(Clock(), 10_000)
    with pytest.raises(GatewayError) as caught:
        drive(store.resolve(memory, "n", previous, items))
    assert caught.value.status == 400 and caught.value.param == param


def test_reasoning_carrier_round_trips_and_ignores_what_is_not_ours():
    details = [{"type": "reasoning.text", "text": "é", "signature": "s", "index": 0}]
    assert decode_details(encode_details(details)) == details
    for foreign in ("gAAAAABqaR3-abc", None, 5, "edgerelay.v1.!!!", "edgerelay.v1.bnVsbA=="):
        assert decode_details(foreign) == []
