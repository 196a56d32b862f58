"""A ``Fetch`` whose HTTP client library is imported when it is first needed.

aiohttp takes longer to import than the rest of the server together (measured with
``-X importtime``: 100-270 ms of a 0.4-1 s start on the 2-core bench machine), and no request
needs it before the first upstream call: ``/healthz`` answers without it. The local server
imports it in a worker thread right after start-up (``preload``), so the first upstream call
normally finds it ready, and a call that comes sooner imports it then."""

from __future__ import annotations

import importlib
from typing import Any

from edgerelay.core.fetch import Fetch, FetchRequest, FetchResponse


class LazyFetch:
    """``module.name(**options)`` built on the first call; until then nothing of it is
    imported, no pool is saturated and closing has nothing to close."""

    __slots__ = ("_fetch", "_module", "_name", "_options")

    def __init__(self, module: str, name: str, **options: Any) -> None:
        self._module = module
        self._name = name
        self._options = options
        self._fetch: Fetch | None = None

    @property
    def loaded(self) -> bool:
        """Whether the transport has been built (it is on the first call)."""
        return self._fetch is not None

    def preload(self) -> None:
        """Import the transport's module (and so its HTTP client library). Safe to run in a
        worker thread: it only imports, and Python's import lock makes a request that imports
        it meanwhile wait for this one. The transport itself is built in the event loop."""
        importlib.import_module(self._module)

    def _load(self) -> Fetch:
        module = importlib.import_module(self._module)
        fetch = self._fetch = getattr(module, self._name)(**self._options)
        return fetch

    async def __call__(self, request: FetchRequest) -> FetchResponse:
        return await (self._fetch or self._load())(request)

    def saturated_pools(self) -> list[str]:
        """The pools whose connections are all in use (none before the first call)."""
        saturated = getattr(self._fetch, "saturated_pools", None)
        return saturated() if saturated is not None else []

    async def aclose(self) -> None:
        if self._fetch is not None:
            await self._fetch.aclose()
