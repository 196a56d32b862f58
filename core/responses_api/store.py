"""Stored responses: what ``previous_response_id`` and ``item_reference`` resolve from.

``ResponseStore`` is the whole interface a target implements (bytes under a key, per client
namespace, with a time to live): ``MemoryResponseStore`` here serves the local server and a warm
Lambda instance; ``edgerelay.stores.responses_redis`` implements the same two methods on Redis
(EDGERELAY_STORE) for every process and instance at once, and the Worker's
``durable_responses.py`` on Durable Objects (over ``records.py``). A store
that cannot be reached raises ``StoreUnavailable``: a lookup is then a 503 naming the setting,
while a response that could not be kept still goes out (a later reference to it is the 400 of
an unknown id). Records are
JSON: a response's full conversation (its resolved input and its output) under the response
id, and each output item under its own id, so either kind of reference is one lookup.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Protocol

from .. import safejson
from ..errors import GatewayError, bad_request
from ..safejson import dumps


class StoreUnavailable(Exception):
    """The store could not be reached; the message says why (never a URL or a password), and
    ``setting`` what to check (EDGERELAY_STORE unless the store says otherwise)."""

    def __init__(self, message: str, setting: str = "EDGERELAY_STORE") -> None:
        super().__init__(message)
        self.setting = setting


class ResponseStore(Protocol):
    async def get(self, namespace: str, key: str) -> bytes | None:
        """The value stored under ``key``, or None when absent or expired; raises
        ``StoreUnavailable`` when the store cannot answer."""
        ...

    async def put(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        """Keep ``value`` for ``ttl`` seconds (the store may drop it sooner to stay in bounds)."""
        ...


class MemoryResponseStore:
    """In-process store bounded in bytes: expired and then oldest entries go first."""

    def __init__(self, clock: Callable[[], float], max_bytes: int) -> None:
        self._clock = clock
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()

    async def get(self, namespace: str, key: str) -> bytes | None:
        entry = self._entries.get((namespace, key))
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._drop((namespace, key))
            return None
        return entry[1]

    async def put(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        self._drop((namespace, key))
        size = len(value) + len(key) + len(namespace)
        if size > self._max_bytes:
            return  # larger than the whole store: not kept (a later reference is a 400)
        now = self._clock()
        for old in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            self._drop(old)
        while self._bytes + size > self._max_bytes:
            self._drop(next(iter(self._entries)))  # insertion order: the oldest first
        self._entries[(namespace, key)] = (now + ttl, value)
        self._bytes += size

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1]) + len(key[0]) + len(key[1])

    @property
    def size(self) -> int:
        """Bytes held (values and keys)."""
        return self._bytes


def namespace_of(headers: Mapping[str, str], client_id: str | None = None) -> str:
    """A client's namespace, so one client's stored responses are not another's: the id the
    gateway's identity step gave it (a JWT's subject, a client key, a session), which outlives
    any one token; for an anonymous caller, a digest of the credential it sends (a key an SDK
    insists on). No credential is kept."""
    if client_id and client_id != "anonymous":
        source = "client:" + client_id
    else:
        source = headers.get("authorization") or headers.get("x-api-key") or ""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:32]


async def resolve(
    store: ResponseStore,
    namespace: str,
    previous_id: str | None,
    items: list[tuple[str, dict]],
) -> list[tuple[str, dict]]:
    """The conversation to send: the previous response's input and output, then ``items`` with
    each ``item_reference`` replaced by the stored item. An unknown id is a 400 naming it."""
    resolved: list[tuple[str, dict]] = []
    if previous_id is not None:
        record = await _load(store, namespace, previous_id)
        if not isinstance(record, dict) or "output" not in record:
            raise bad_request(
                f"Previous response with id '{previous_id}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        where = "previous_response_id"
        resolved += [(where, item) for item in record.get("input", []) + record["output"]]
    for path, item in items:
        if item.get("type") == "item_reference":
            item_id = item.get("id")
            stored = await _load(store, namespace, item_id) if isinstance(item_id, str) else None
            if not isinstance(stored, dict) or "type" not in stored:
                raise bad_request(
                    f"Item with id '{item_id}' not found.", param=path + ".id", code="not_found"
                )
            item = stored
        resolved.append((path, item))
    return resolved


async def _load(store: ResponseStore, namespace: str, key: str) -> object:
    try:
        raw = await store.get(namespace, key)
    except StoreUnavailable as exc:
        raise GatewayError(
            503,
            f"Stored responses cannot be read right now ({exc}); check {exc.setting}, or "
            "send the conversation's items instead of a reference.",
            type="service_unavailable",
            code="store_unavailable",
        ) from None
    if raw is None:
        return None
    try:
        return safejson.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


async def keep(
    store: ResponseStore,
    namespace: str,
    ttl: float,
    conversation: list[tuple[str, dict]],
    response: dict,
) -> None:
    """Store a finished response: its conversation under its id, each output item under its."""
    record = {"input": [item for _, item in conversation], "output": response["output"]}
    try:
        await store.put(namespace, response["id"], dumps(record), ttl)
        for item in response["output"]:
            await store.put(namespace, item["id"], dumps(item), ttl)
    except StoreUnavailable:
        # The answer is the client's either way; only a later reference to it will fail
        # (the 400 of an unknown id), which is better than losing an answer already paid for.
        pass
