"""Stand-ins for the modules a Cloudflare Python Worker imports (``js``, ``pyodide.ffi``,
``workers``), just enough of each for the Worker's own logic to run on CPython.

They are installed in ``sys.modules`` by the ``worker`` fixture of test_entry_cpython.py only,
and removed after it: nothing here is importable as the real thing. The real platform is
exercised by the Pyodide suite (tests/pyodide/test_worker.py).
"""

from __future__ import annotations

import asyncio
import types


class JsException(Exception):
    def __init__(self, name: str = "TypeError", message: str = "terminated") -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message


class Proxy:
    def __init__(self, obj) -> None:
        self.obj = obj
        self.destroyed = False

    def destroy(self) -> None:
        self.destroyed = True


class Callable(Proxy):
    def __call__(self, *args):
        return self.obj(*args)


def to_js(value, **_kw):
    return value  # bytes stay bytes: the fakes below read them as they are


class Promise:
    """Only what the Worker uses on `writer.closed`: catch(callback)."""

    def __init__(self) -> None:
        self.on_reject = None

    def catch(self, callback) -> None:
        self.on_reject = callback

    def reject(self, reason="cancelled") -> None:
        if self.on_reject is not None:
            self.on_reject(reason)


class Chunk:
    def __init__(self, data: bytes | None) -> None:
        self.done = data is None
        self.value = types.SimpleNamespace(to_bytes=lambda: data, length=len(data or b""))


class ReadableStream:
    """Hands out `chunks` one read at a time; `error` is raised after them if set."""

    def __init__(self, chunks=(), error: Exception | None = None) -> None:
        self.chunks = list(chunks)
        self.error = error
        self.cancelled = False

    def getReader(self):
        return self

    async def read(self):
        await asyncio.sleep(0)
        if self.chunks:
            return Chunk(self.chunks.pop(0))
        if self.error is not None:
            raise self.error
        return Chunk(None)

    async def cancel(self):
        self.cancelled = True


class Writer:
    def __init__(self, fail_after: int | None = None) -> None:
        self.written: list[bytes] = []
        self.closed = Promise()
        self.is_closed = False
        self.aborted = None
        self.fail_after = fail_after

    async def write(self, chunk: bytes) -> None:
        await asyncio.sleep(0)
        if self.fail_after is not None and len(self.written) >= self.fail_after:
            raise JsException("TypeError", "the stream was cancelled")
        self.written.append(bytes(chunk))

    async def close(self) -> None:
        self.is_closed = True

    async def abort(self, reason) -> None:
        self.aborted = reason


class TransformStream:
    last = None

    def __init__(self) -> None:
        self.writer = Writer()
        self.writable = types.SimpleNamespace(getWriter=lambda: self.writer)
        self.readable = ReadableStream()
        TransformStream.last = self

    @classmethod
    def new(cls):
        return cls()


class Headers:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    @classmethod
    def new(cls):
        return cls()

    def append(self, name: str, value: str) -> None:
        self.items.append((name, value))

    def __iter__(self):
        return iter(self.items)


class AbortController:
    def __init__(self) -> None:
        self.aborted = False
        self.signal = types.SimpleNamespace(aborted=False)

    @classmethod
    def new(cls):
        return cls()

    def abort(self, *_reason) -> None:
        self.aborted = True
        self.signal.aborted = True


class FakeJsResponse:
    def __init__(self, status=200, headers=(), body=None) -> None:
        self.status = status
        self.headers = list(headers)
        self.body = body


def make_js(fetch=None) -> types.ModuleType:
    """A fresh ``js`` module; ``fetch(url, init) -> FakeJsResponse`` (a coroutine function)."""
    js = types.ModuleType("js")
    js.timers = {}
    js.controllers = []

    def set_timeout(callback, ms):
        handle = len(js.timers) + 1
        js.timers[handle] = (callback, ms)
        return handle

    def clear_timeout(handle):
        js.timers.pop(handle, None)

    class RecordingController(AbortController):
        @classmethod
        def new(cls):
            controller = cls()
            js.controllers.append(controller)
            return controller

    js.setTimeout = set_timeout
    js.clearTimeout = clear_timeout
    js.fetch = fetch
    js.Headers = Headers
    js.TransformStream = TransformStream
    js.AbortController = RecordingController
    js.Error = types.SimpleNamespace(new=lambda message: message)
    js.Object = types.SimpleNamespace(
        fromEntries=dict, keys=lambda obj: [k for k in vars(obj) if not k.startswith("_")]
    )
    return js


def make_pyodide() -> tuple[types.ModuleType, types.ModuleType]:
    pyodide = types.ModuleType("pyodide")
    ffi = types.ModuleType("pyodide.ffi")
    ffi.JsException = JsException
    ffi.to_js = to_js
    ffi.create_proxy = Proxy
    ffi.create_once_callable = Callable
    ffi.jsnull = types.SimpleNamespace()  # a distinct object, as in Pyodide >= 0.27
    pyodide.ffi = ffi
    return pyodide, ffi


class WorkerResponse:
    """``workers.Response``: records what the Worker built."""

    def __init__(self, body=None, status=None, status_text="", headers=None) -> None:
        self.body = body
        self.status = status
        self.headers = list(headers or [])


class WorkerEntrypoint:
    def __init__(self, ctx, env) -> None:
        self.ctx = ctx
        self.env = env


class DurableObject:
    def __init__(self, ctx, env) -> None:
        self.ctx = ctx
        self.env = env


def make_workers() -> types.ModuleType:
    workers = types.ModuleType("workers")
    workers.Response = WorkerResponse
    workers.WorkerEntrypoint = WorkerEntrypoint
    workers.DurableObject = DurableObject
    return workers


class Context:
    """An ExecutionContext: keeps what waitUntil got."""

    def __init__(self) -> None:
        self.waiting = []

    def waitUntil(self, promise) -> None:
        self.waiting.append(promise)


class Request:
    """The inbound JS Request, as much of it as the Worker reads."""

    def __init__(self, url, method="POST", headers=(), body=None, signal=None) -> None:
        self.url = url
        self.method = method
        self.headers = list(headers)
        self.body = body
        self.signal = signal
