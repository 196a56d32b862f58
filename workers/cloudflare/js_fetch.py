"""``Fetch`` over the Worker's ``js.fetch``: a response body stays a JS ``ReadableStream``
until read, so a passthrough can hand it to the client untouched (``native_body``).

Each request's ``AbortController`` fires when the headers do not come within
``FetchRequest.timeout``, a body read waits past the idle timeout, the total timeout passes,
the client's request signal aborts (it left), or core closes an unfinished body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

import js
from pyodide.ffi import JsException, create_once_callable, create_proxy, to_js

from edgerelay.core.fetch import FetchError, FetchRequest

try:  # Pyodide >= 0.27 hands JS null to Python as ``jsnull``, older ones as None.
    from pyodide.ffi import jsnull
except ImportError:  # pragma: no cover - only on old Pyodide
    jsnull = None


timers: Any = js  # a seam: the Pyodide tests fire timers without waiting


def _js_object(mapping: dict):
    # A plain object: to_js would build a Map, which fetch() ignores.
    return to_js(mapping, dict_converter=js.Object.fromEntries)


class JsFetchResponse:
    """An upstream response whose body has not been read yet (``core.FetchResponse``)."""

    __slots__ = ("headers", "native_body", "status", "_controller", "_idle", "_reader", "_total")

    def __init__(self, response, controller, idle: float | None, total: _Total) -> None:
        self.status = int(response.status)
        # JS Headers lower-cases names and joins repeated ones with ", ".
        self.headers = {str(name): str(value) for name, value in response.headers}
        body = response.body
        self.native_body = None if body is None or body is jsnull else body
        self._controller = controller
        self._idle = idle
        self._reader = None
        self._total = total

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield each chunk as the runtime delivers it: one ``reader.read()`` per chunk. A read
        waiting past the idle timeout aborts the upstream request (one JS timer per chunk)."""
        if self.native_body is None:
            return
        reader = self._reader = self.native_body.getReader()
        idle_ms = self._idle * 1000 if self._idle else None  # 0: off
        stalled = False

        def on_idle() -> None:
            nonlocal stalled
            stalled = True
            self._controller.abort()

        # One proxy for the whole body: a once-callable per chunk would leak when cleared.
        callback = create_proxy(on_idle) if idle_ms is not None else None
        try:
            while True:
                timer = None
                if callback is not None:
                    timer = timers.setTimeout(callback, idle_ms)
                try:
                    result = await reader.read()
                finally:
                    if timer is not None and not stalled:
                        timers.clearTimeout(timer)
                if result.done:
                    return
                yield result.value.to_bytes()
        except JsException as exc:  # broke off ("TypeError: terminated") or aborted
            if stalled:
                raise FetchError("no data within the idle timeout", timeout=True) from None
            if self._total.fired:
                raise FetchError("the total timeout passed", timeout=True) from None
            raise FetchError(_describe(exc)) from None
        finally:
            if callback is not None:
                callback.destroy()
            self._total.clear()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aclose(self) -> None:
        # A no-op on a finished exchange; an unfinished one drops the connection.
        self._controller.abort()
        self._total.clear()


class _Total:
    """The total timeout: a timer from the request's start aborts it, body included."""

    __slots__ = ("_call", "_timer", "fired")

    def __init__(self, controller, seconds: float | None) -> None:
        self.fired, self._timer = False, None

        def on_total() -> None:
            self.fired = True
            controller.abort()

        if seconds is not None:
            self._call = create_once_callable(on_total)
            self._timer = timers.setTimeout(self._call, seconds * 1000)

    def clear(self) -> None:
        if self._timer is not None:
            timers.clearTimeout(self._timer)
            self._timer = None
            if not self.fired:
                self._call.destroy()  # never called: not freed otherwise


# The AbortSignal of the request being served (set by the entry): a context variable, as one
# Fetch serves all of an isolate's concurrent requests, each in its own task (a request's pump
# task inherits it).
CLIENT_SIGNAL: ContextVar[Any] = ContextVar("edgerelay_client_signal", default=None)


class JsFetch:
    """``core.Fetch`` over ``js.fetch``. ``client_signal``: the AbortSignal that drops an
    upstream request when the client leaves (default: the current request's, CLIENT_SIGNAL)."""

    __slots__ = ("_client_signal",)

    def __init__(self, client_signal=None) -> None:
        self._client_signal = None if client_signal is jsnull else client_signal

    def _signal(self):
        if self._client_signal is not None:
            return self._client_signal
        signal = CLIENT_SIGNAL.get()
        return None if signal is jsnull else signal

    async def aclose(self) -> None:
        """Nothing to release: the runtime owns the connections."""

    async def __call__(self, request: FetchRequest) -> JsFetchResponse:
        controller = js.AbortController.new()
        timed_out = False

        def on_timeout() -> None:
            nonlocal timed_out
            timed_out = True
            controller.abort()

        timer = None
        if request.timeout is not None:
            timer = timers.setTimeout(create_once_callable(on_timeout), request.timeout * 1000)
        total = _Total(controller, request.total_timeout)
        client = None if request.shared else self._signal()
        unlink = None
        if client is not None:
            if client.aborted:
                raise FetchError("the client went away")
            unlink = _abort_with(client, controller)
        init = {
            "method": request.method,
            "headers": _js_object(dict(request.headers)),
            "signal": controller.signal,
            "redirect": "manual",  # as the CPython transports: never follow redirects
        }
        if request.body is not None:
            init["body"] = to_js(request.body)  # bytes -> a Uint8Array copy
        try:
            response = await js.fetch(request.url, _js_object(init))
        except asyncio.CancelledError:
            controller.abort()  # no one waits for this answer any more (a shared call's last
            raise  # reader left): the runtime drops the request
        except JsException as exc:
            total.clear()
            if timed_out or total.fired:
                raise FetchError("timed out", timeout=True) from None
            raise FetchError(_describe(exc), connect=_refused(exc)) from None
        finally:
            # It covers the headers only, as in the CPython transports.
            if timer is not None:
                timers.clearTimeout(timer)
        if unlink is not None:
            # From here a client that leaves cancels the body or the pump (which calls aclose).
            unlink()
        idle = request.idle_timeout if request.idle_timeout is not None else request.timeout
        return JsFetchResponse(response, controller, idle, total)


def _abort_with(signal, controller):
    """Abort ``controller`` when ``signal`` does; return a function that undoes the link."""
    handler = create_once_callable(lambda _event: controller.abort())
    signal.addEventListener("abort", handler, _js_object({"once": True}))

    def unlink() -> None:
        signal.removeEventListener("abort", handler)
        try:
            handler.destroy()
        except Exception:  # already called (and so destroyed) by an abort
            pass

    return unlink


def _refused(exc: JsException) -> bool:
    cause = getattr(exc, "cause", None)
    return getattr(cause, "code", None) in ("ECONNREFUSED", "ENOTFOUND") if cause else False


def _describe(exc: JsException) -> str:
    # Never the URL or headers: only what went wrong, e.g. "TypeError: fetch failed (ECONNREFUSED)".
    text = f"{getattr(exc, 'name', None) or 'Error'}: {getattr(exc, 'message', None) or exc}"
    cause = getattr(exc, "cause", None)  # undici puts the socket error here
    if cause is not None and cause is not jsnull:
        detail = getattr(cause, "code", None) or getattr(cause, "message", None)
        if detail:
            text += f" ({detail})"
    return text
