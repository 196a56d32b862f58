"""A loopback upstream told, request by request, how to misbehave (CPython only).

``FaultUpstream(script)`` answers the n-th request with ``script[n]`` (the last entry repeats).
It speaks raw HTTP/1.1 over asyncio streams, so it can do what a well-behaved server library
will not: never send headers, stall mid-body, cut the connection mid-chunk. It counts the
connections it holds open, so a test can assert that the gateway left none behind. Loopback
only; every wait in it is bounded.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

WAIT = 10.0  # generous: only a bug (a connection never closed) ever reaches it


@dataclass
class Fault:
    """One answer. ``chunks`` are written one by one (chunked encoding) unless ``length`` is
    true; ``then`` says what happens after ``after`` chunks: "end" (normal), "stall" (hold the
    connection open, sending nothing), "cut" (close the connection mid-body), "rest" (send the
    remaining chunks, then end)."""

    status: int = 200
    headers: dict = field(default_factory=dict)
    chunks: Sequence[bytes] = ()
    then: str = "end"  # "end" | "stall" | "cut" | "rest"
    after: int | None = None  # chunks sent before ``then`` applies (default: all of them)
    silent: bool = False  # read the request, never answer (no headers: a first-byte timeout)
    # Set by the test when ``then`` may happen (lock-step: e.g. once the client has read the
    # content sent so far; a client library may drop data that arrives together with a cut).
    gate: threading.Event | None = None


def json_fault(status: int, body: object, **headers: str) -> Fault:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Fault(status, {"content-type": "application/json", **headers}, [data])


def sse_fault(events: Sequence[bytes], **kw) -> Fault:
    return Fault(200, {"content-type": "text/event-stream"}, list(events), **kw)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict
    body: bytes


class FaultUpstream:
    def __init__(self, script: Sequence[Fault] = ()) -> None:
        self.script = list(script) or [Fault(404)]
        self.seen: list[Seen] = []
        self.opened = 0  # connections accepted
        self._open: set[asyncio.StreamWriter] = set()
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0
        self.url = ""

    # -- what tests read ----------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        with self._changed:
            return len(self._open)

    def wait_all_closed(self, timeout: float = WAIT) -> bool:
        """True once no connection is open (the gateway closed or released them all)."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._open, timeout)

    def wait_seen(self, count: int, timeout: float = WAIT) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.seen) >= count, timeout)

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> FaultUpstream:
        self._thread.start()
        if not self._ready.wait(WAIT):
            raise RuntimeError("fault upstream did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(WAIT)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready.set()
        await self._stop.wait()
        server.close()
        for writer in list(self._open):
            writer.transport.abort()
        await asyncio.sleep(0)

    # -- one connection -----------------------------------------------------------------------

    def _track(self, writer: asyncio.StreamWriter, is_open: bool) -> None:
        with self._changed:
            if is_open:
                self._open.add(writer)
                self.opened += 1
            else:
                self._open.discard(writer)
            self._changed.notify_all()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self._track(writer, True)
        try:
            for _ in range(1000):  # requests on one keep-alive connection, bounded
                request = await _read_request(reader)
                if request is None:
                    break
                with self._changed:
                    fault = self.script[min(len(self.seen), len(self.script) - 1)]
                    self.seen.append(request)
                    self._changed.notify_all()
                if not await self._answer(fault, reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if not writer.transport.is_closing():
                writer.transport.abort()
            else:  # closing after a cut: let the FIN go out
                try:
                    await writer.wait_closed()
                except ConnectionError:
                    pass
            self._track(writer, False)

    async def _answer(self, fault: Fault, reader, writer) -> bool:
        """Write ``fault``; False when the connection must end here."""
        if fault.silent:
            await _until_closed(reader, self._stop)
            return False
        head = [f"HTTP/1.1 {fault.status} {_REASONS.get(fault.status, 'Status')}"]
        head += [f"{k}: {v}" for k, v in fault.headers.items()]
        head.append("transfer-encoding: chunked")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        after = len(fault.chunks) if fault.after is None else fault.after
        for chunk in fault.chunks[:after]:
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        if fault.gate is not None:
            opened = await asyncio.get_running_loop().run_in_executor(None, fault.gate.wait, WAIT)
            if not opened:
                raise ConnectionError("the test never opened the gate")
        if fault.then == "stall":
            await _until_closed(reader, self._stop)
            return False
        if fault.then == "rest":  # the chunks after ``after``, once the gate is open
            for chunk in fault.chunks[after:]:
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
        if fault.then == "cut":
            # A FIN without the last chunk: the body is cut short, and what was written
            # still arrives (a reset could make the client drop it unread).
            await writer.drain()
            writer.close()
            return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


async def _read_request(reader: asyncio.StreamReader) -> Seen | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        for _ in range(100_000):
            size = int((await reader.readuntil(b"\r\n")).strip() or b"0", 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Seen(method, path, headers, body)


async def _until_closed(reader: asyncio.StreamReader, stop: asyncio.Event) -> None:
    """Hold the connection, sending nothing, until the client closes it (or the test ends)."""
    eof = asyncio.ensure_future(reader.read())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({eof, stopped}, return_when=asyncio.FIRST_COMPLETED)
    eof.cancel()
    stopped.cancel()


_REASONS = {
    200: "OK",
    400: "Bad Request",
    408: "Request Timeout",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Overloaded",
}


def refused_url() -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Blackhole:
    """A loopback port whose connects never complete: it listens with a backlog of one that is
    kept full and never accepts, so the kernel drops every further SYN."""

    def __enter__(self) -> Blackhole:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        port = self._listener.getsockname()[1]
        self._fillers = []
        for _ in range(3):  # fill the accept queue (its length is backlog + 1 on Linux)
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            self._fillers.append(filler)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        for sock in (*self._fillers, self._listener):
            sock.close()
