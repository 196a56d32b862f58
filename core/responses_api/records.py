"""What a Durable Object holding one client's stored responses does (the Worker's
``workers/cloudflare/durable_responses.py`` calls it over RPC, with JSON text both ways), over a
small rows interface: the object's SQLite rows, or a dict in tests. Records expire; expired ones
are deleted at the client's next write or by a sweep (the object's alarm, at ``next_sweep``),
and a client's records stay within a bound in bytes (the oldest go first), as the in-memory
store's do.
"""

from __future__ import annotations

import json
from typing import Protocol

# A client's records are kept within this many bytes unless the call says otherwise (the
# gateway sends its EDGERELAY_RESPONSES_MAX_BYTES).
PER_CLIENT_BYTES = 64 * 1024 * 1024
# Expired records are deleted by a sweep this long after the oldest one expires, so one sweep
# clears a batch (an expired record is never read, so a late delete costs only storage).
SWEEP_SLACK = 3600.0


class Rows(Protocol):
    """One client's records: text under a key, each with its expiry time."""

    def get(self, key: str, now: float) -> str | None: ...
    def put(self, key: str, value: str, expires_at: float) -> None: ...
    def drop_expired(self, now: float) -> None: ...
    def size(self) -> int: ...
    def drop_oldest(self) -> bool: ...
    def oldest_expiry(self) -> float | None: ...


class ResponseRecords:
    """One client's stored responses, over ``rows``: ``get`` and ``put`` take and give JSON
    text, as the RPC calls carry them (``get``: ``{"key", "now"}``, the value or ``""``;
    ``put``: ``{"key", "value", "expires_at", "now", "max_bytes"}``)."""

    def __init__(self, rows: Rows, max_bytes: int = PER_CLIENT_BYTES) -> None:
        self.rows = rows
        self.max_bytes = max_bytes

    def get(self, payload: str) -> str:
        request = json.loads(payload)
        return self.rows.get(request["key"], request["now"]) or ""

    def put(self, payload: str) -> str:
        request = json.loads(payload)
        bound = int(request.get("max_bytes", self.max_bytes))
        value = request["value"]
        self.rows.drop_expired(request["now"])
        if len(value.encode("utf-8", "surrogatepass")) > bound:
            return "too large"  # larger than the whole bound: not kept, nothing else dropped
        self.rows.put(request["key"], value, request["expires_at"])
        # Each pass drops one record, so this ends (drop_oldest is False once none is left).
        while self.rows.size() > bound and self.rows.drop_oldest():
            pass
        return "ok"

    def sweep(self, now: float) -> float | None:
        """Delete the records expired at ``now``; when the next sweep is due (None: nothing
        left to sweep)."""
        self.rows.drop_expired(now)
        return self.next_sweep()

    def next_sweep(self) -> float | None:
        """When the oldest record held will have expired, plus the slack; None when empty."""
        oldest = self.rows.oldest_expiry()
        return None if oldest is None else oldest + SWEEP_SLACK


class DictRows:
    """``Rows`` in a dict (key -> (value, expires_at)): the object's SQLite rows, as tests run
    them without a Durable Object."""

    def __init__(self) -> None:
        self._rows: dict[str, tuple[str, float]] = {}

    def get(self, key: str, now: float) -> str | None:
        row = self._rows.get(key)
        return row[0] if row is not None and row[1] > now else None

    def put(self, key: str, value: str, expires_at: float) -> None:
        self._rows[key] = (value, expires_at)

    def drop_expired(self, now: float) -> None:
        self._rows = {k: row for k, row in self._rows.items() if row[1] > now}

    def size(self) -> int:
        return sum(len(row[0].encode("utf-8", "surrogatepass")) for row in self._rows.values())

    def drop_oldest(self) -> bool:
        if not self._rows:
            return False
        del self._rows[min(self._rows, key=lambda k: self._rows[k][1])]
        return True

    def oldest_expiry(self) -> float | None:
        return min((row[1] for row in self._rows.values()), default=None)
