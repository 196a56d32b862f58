"""Store operations as JSON text, for stores reached by a call (a Durable Object's RPC)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from .store import Adjustment, Slot, StoreAnswer
from .windows import Counter


def encode_admit(counters: Sequence[Counter], slots: Sequence[Slot], now: float) -> str:
    return json.dumps(
        {"now": now, "counters": [list(c) for c in counters], "slots": [list(s) for s in slots]}
    )


def decode_admit(text: str) -> tuple[tuple[Counter, ...], tuple[Slot, ...], float]:
    data = json.loads(text)
    counters = tuple(
        Counter(key, name, limit, amount, tuple((b, w) for b, w in buckets), expires)
        for key, name, limit, amount, buckets, expires in data["counters"]
    )
    slots = tuple(Slot(*s) for s in data["slots"])
    return counters, slots, float(data["now"])


def encode_answer(answer: StoreAnswer) -> str:
    return json.dumps([answer.admitted, answer.counts, answer.open_slots])


def decode_answer(text: str) -> StoreAnswer:
    admitted, counts, open_slots = json.loads(text)
    return StoreAnswer(
        bool(admitted),
        tuple(tuple(float(v) for v in values) for values in counts),
        tuple(int(n) for n in open_slots),
    )


def encode_adjust(adjustments: Sequence[Adjustment], now: float) -> str:
    return json.dumps({"now": now, "adjustments": [list(a) for a in adjustments]})


def decode_adjust(text: str) -> tuple[tuple[Adjustment, ...], float]:
    data = json.loads(text)
    return tuple(Adjustment(*a) for a in data["adjustments"]), float(data["now"])


def encode_slots(slots: Sequence[Slot]) -> str:
    return json.dumps([list(s) for s in slots])


def decode_slots(text: str) -> tuple[Slot, ...]:
    return tuple(Slot(*s) for s in json.loads(text))
