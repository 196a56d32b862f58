"""Loopback servers for end-to-end tests (CPython only): a scriptable fake upstream and the
real gateway on uvicorn, each on a free 127.0.0.1 port in its own thread and event loop."""

from __future__ import annotations

import asyncio
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import ClientPayloadError, web

WAIT = 10.0  # generous: only a deadlock (a buffering relay) ever reaches it


def serve_process(port: int, env: Mapping[str, str], *args: str) -> subprocess.Popen:
    """A real ``edgerelay serve`` process on ``port``, once it answers /healthz."""
    import httpx

    server = subprocess.Popen(
        [sys.executable, "-m", "edgerelay.server.cli", "serve", "--port", str(port), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(1000):  # bounded: until it listens
        assert server.poll() is None, "the server did not start"
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=WAIT)
            return server
        except httpx.TransportError:
            time.sleep(0.01)
    raise AssertionError("the server never listened")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Reply:
    """What the fake upstream sends: status, headers, then body chunks one by one. With
    ``lockstep``, chunk k+1 is sent only after the test called ``upstream.release()`` k times."""

    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes] = ()
    lockstep: bool = False
    cut_after: int | None = None  # drop the connection after this many chunks


@dataclass
class Seen:
    method: str
    path: str  # raw path as received, with the query
    headers: dict
    body: bytes


class FakeUpstream:
    """``handler(seen) -> Reply`` answers each request; every request is recorded."""

    def __init__(self, handler: Callable[[Seen], Reply] | None = None) -> None:
        self.handler = handler or (lambda seen: Reply(404))
        self.seen: list[Seen] = []
        self.cancelled = threading.Event()  # set when a client went away mid-body
        self.finished = threading.Event()
        self.uploaded: queue.Queue[bytes] = queue.Queue()  # request body pieces as they arrive
        self._released = threading.Semaphore(0)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._run, daemon=True)

    def release(self) -> None:
        self._released.release()

    def __enter__(self) -> FakeUpstream:
        self._thread.start()
        if not self._ready.wait(WAIT):
            raise RuntimeError("fake upstream did not start")
        return self

    def __exit__(self, *exc) -> None:
        for _ in range(64):  # unblock any lock-step reply still waiting
            self._released.release()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        pieces = []
        try:
            async for piece in request.content.iter_any():
                self.uploaded.put(piece)
                pieces.append(piece)
        except (ConnectionError, asyncio.CancelledError, web.HTTPException, ClientPayloadError):
            self.cancelled.set()  # the upload was abandoned mid-way
            raise
        seen = Seen(request.method, request.raw_path, dict(request.headers), b"".join(pieces))
        self.seen.append(seen)
        reply = self.handler(seen)
        response = web.StreamResponse(status=reply.status, headers=dict(reply.headers))
        await response.prepare(request)
        try:
            for i, chunk in enumerate(reply.chunks):
                if reply.cut_after is not None and i >= reply.cut_after:
                    request.transport.close()
                    return response
                if reply.lockstep and i > 0:
                    await self._wait_release(request)
                await response.write(chunk)
            await response.write_eof()
            self.finished.set()
        except (ConnectionResetError, asyncio.CancelledError):
            self.cancelled.set()
            raise
        return response

    async def _wait_release(self, request: web.Request) -> None:
        deadline = time.monotonic() + WAIT
        while not self._released.acquire(blocking=False):
            transport = request.transport
            if transport is None or transport.is_closing():  # the client went away
                raise ConnectionResetError("client closed the connection")
            if time.monotonic() > deadline:
                raise TimeoutError("lock-step upstream: the client never read the last chunk")
            await asyncio.sleep(0.001)


class GatewayServer:
    """The real ASGI app on uvicorn, configured from ``env`` (not the process environment)."""

    def __init__(
        self,
        env: Mapping[str, str],
        http_client: str = "aiohttp",
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        random: Callable[[], float] | None = None,
        **options: object,
    ) -> None:
        """``clock``, ``sleep``, ``random``: the gateway's seams (None: the real ones);
        ``options``: further uvicorn settings (``edgerelay serve``'s connection limits)."""
        import uvicorn

        from edgerelay.server.asgi import create_app

        self.app = create_app(
            {**env, "EDGERELAY_HTTP_CLIENT": http_client}, clock=clock, sleep=sleep, random=random
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            loop="asyncio",
            lifespan="on",
            log_level="warning",
            access_log=False,
            **{"http": "httptools", **options},
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> GatewayServer:
        self._thread.start()
        deadline = time.monotonic() + WAIT
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self._thread.join(WAIT)


def sse_frames(response) -> Iterable[bytes]:
    """Each SSE frame of a streaming httpx response (without its blank line) as soon as it is
    complete: lock-step tests release the upstream's next chunk from this loop."""
    pending = b""
    for piece in response.iter_raw():
        pending += piece
        while b"\n\n" in pending:
            frame, pending = pending.split(b"\n\n", 1)
            yield frame
