"""Cutting a byte stream at random places, as a network may deliver it (standard library only,
so the Pyodide suite uses it too)."""

from __future__ import annotations

import random


def random_splits(data: bytes, seed: int | random.Random, most: int = 60) -> list[bytes]:
    """``data`` in up to ``most`` + 1 pieces cut at random offsets; the same seed, the same cuts."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    if len(data) < 2:
        return [data]
    count = min(len(data) - 1, rng.randint(1, most))
    cuts = sorted(rng.sample(range(1, len(data)), count))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
