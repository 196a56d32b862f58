"""The Worker's limit store: each client key's counters live in its own Durable Object
(``EdgerelayLimits``), reached over RPC with JSON text; one call per key per admission.

A request limited by two keys (a Turnstile session and its address) asks both objects in turn;
when the second refuses, what the first took is given back, so a refusal changes nothing (for an
instant the first key counts one more request than it will).
"""

from __future__ import annotations

from collections.abc import Sequence

from edgerelay.core.limits import Adjustment, Counter, Slot, StoreAnswer, StoreUnavailable, wire


class DurableObjectStore:
    def __init__(self, namespace) -> None:
        self.namespace = namespace

    def _stub(self, key: str):
        return self.namespace.getByName(key)

    async def _call(self, key: str, method: str, payload: str) -> str:
        try:
            return str(await getattr(self._stub(key), method)(payload))
        except Exception as exc:  # a JsException from the runtime: the object is unreachable
            raise StoreUnavailable(
                f"Durable Object EDGERELAY_LIMITS: {type(exc).__name__}"
            ) from None

    async def admit(
        self, counters: Sequence[Counter], slots: Sequence[Slot], now: float
    ) -> StoreAnswer:
        keys = list(dict.fromkeys([c.key for c in counters] + [s.key for s in slots]))
        counts: dict[int, tuple[float, ...]] = {}
        open_slots: dict[int, int] = {}
        taken: list[tuple[list[Counter], list[Slot]]] = []
        admitted = True
        for key in keys:
            mine = [i for i, c in enumerate(counters) if c.key == key]
            my_slots = [i for i, s in enumerate(slots) if s.key == key]
            part_c = [counters[i] for i in mine]
            part_s = [slots[i] for i in my_slots]
            text = await self._call(key, "admit", wire.encode_admit(part_c, part_s, now))
            answer = wire.decode_answer(text)
            counts.update(zip(mine, answer.counts, strict=True))
            open_slots.update(zip(my_slots, answer.open_slots, strict=True))
            if not answer.admitted:
                admitted = False
                await self._give_back(taken, now)
                break
            taken.append((part_c, part_s))
        return StoreAnswer(
            admitted,
            tuple(counts.get(i, (0.0,) * len(c.buckets)) for i, c in enumerate(counters)),
            tuple(open_slots.get(i, 0) for i in range(len(slots))),
        )

    async def _give_back(self, taken, now: float) -> None:
        for part_c, part_s in taken:
            undo = [
                Adjustment(c.bucket_id(c.buckets[0][0]), -c.amount, c.expires_at)
                for c in part_c
                if c.amount
            ]
            key = (part_c or part_s)[0].key
            if undo:
                await self._call(key, "adjust", wire.encode_adjust(undo, now))
            if part_s:
                await self._call(key, "release", wire.encode_slots(part_s))

    async def adjust(self, adjustments: Sequence[Adjustment], now: float) -> None:
        by_key: dict[str, list[Adjustment]] = {}
        for a in adjustments:
            by_key.setdefault(a.bucket_id.rsplit("|", 2)[0], []).append(a)
        for key, part in by_key.items():
            await self._call(key, "adjust", wire.encode_adjust(part, now))

    async def release(self, slots: Sequence[Slot]) -> None:
        by_key: dict[str, list[Slot]] = {}
        for s in slots:
            by_key.setdefault(s.key, []).append(s)
        for key, part in by_key.items():
            await self._call(key, "release", wire.encode_slots(part))
