"""A loopback fake of the Lambda Runtime API, for driving the real streaming loop.

It hands out queued events on ``GET /invocation/next`` with the request-id, deadline, ARN and
trace headers Lambda sends, and takes responses apart the way Lambda does: the chunked body chunk
by chunk (each with its arrival time), the JSON prelude and its 8-NUL delimiter, and the
trailers. ``/error`` and ``/init/error`` posts are recorded too. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

WAIT = 10.0  # generous: only a hang (a buffering loop, a lost response) ever reaches it
API = "/2018-06-01/runtime"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:edgerelay-stream"


@dataclass
class Outcome:
    """What the fake Runtime API received for one invocation."""

    request_id: str
    deadline_ms: int
    kind: str = ""  # "response" or "error"
    headers: dict = field(default_factory=dict)  # request headers, lower-case names
    chunks: list[tuple[float, bytes]] = field(default_factory=list)  # (monotonic time, data)
    trailers: dict = field(default_factory=dict)
    ended_at: float | None = None  # monotonic time the body (or error post) was complete
    error: dict | None = None  # the JSON document of an /error post
    clean_end: bool = False  # the chunked body ended with its terminating chunk
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def raw(self) -> bytes:
        return b"".join(data for _, data in self.chunks)

    @property
    def prelude(self) -> dict:
        head, sep, _ = self.raw.partition(b"\x00" * 8)
        assert sep, "no 8-NUL delimiter after the prelude"
        return json.loads(head)

    @property
    def body(self) -> bytes:
        _, sep, rest = self.raw.partition(b"\x00" * 8)
        return rest if sep else b""


class FakeRuntimeAPI:
    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}
        self.init_errors: list[tuple[dict, dict]] = []  # (headers, document)
        self.init_error_seen = threading.Event()
        self.next_calls = 0
        # Called (on the fake's thread) after each body chunk arrives: lets a test release
        # its lock-step upstream only once the previous chunk has really come through.
        self.on_chunk: Callable[[Outcome], None] | None = None
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._queue: asyncio.Queue | None = None
        self._server: asyncio.base_events.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FakeRuntimeAPI:
        self._thread.start()
        if not self._ready.wait(WAIT):
            raise RuntimeError("fake Runtime API did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT)

    def invoke(self, event: dict | bytes, *, deadline_in: float = 60.0) -> Outcome:
        """Queue one invocation; its deadline is ``deadline_in`` seconds from now."""
        request_id = f"req-{next(self._ids):04d}-8c1f2a"
        deadline_ms = int((time.time() + deadline_in) * 1000)
        outcome = Outcome(request_id, deadline_ms)
        self.outcomes[request_id] = outcome
        body = event if isinstance(event, bytes) else json.dumps(event).encode()
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (outcome, body))
        return outcome

    def wait_polling(self, count: int = 1) -> None:
        """Block until the runtime has asked for its ``count``-th invocation (it is up)."""
        deadline = time.monotonic() + WAIT
        while self.next_calls < count:
            assert time.monotonic() < deadline, "the runtime never asked for an invocation"
            time.sleep(0.005)

    def wait(self, outcome: Outcome) -> Outcome:
        assert outcome.done.wait(WAIT), f"no response for {outcome.request_id}"
        return outcome

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._queue = asyncio.Queue()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            if method == "GET" and path == f"{API}/invocation/next":
                await self._next(writer)
            elif method == "POST" and path == f"{API}/init/error":
                document = json.loads(await _read_length(reader, headers))
                self.init_errors.append((headers, document))
                self.init_error_seen.set()
                await _answer(writer, 202)
            elif method == "POST" and path.startswith(f"{API}/invocation/"):
                request_id, _, action = path[len(f"{API}/invocation/") :].partition("/")
                outcome = self.outcomes[request_id]
                outcome.headers = headers
                if action == "response":
                    await self._response(reader, writer, outcome)
                elif action == "error":
                    outcome.kind = "error"
                    outcome.error = json.loads(await _read_length(reader, headers))
                    outcome.ended_at = time.monotonic()
                    await _answer(writer, 202)
                    outcome.done.set()
            else:
                await _answer(writer, 404)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass  # teardown: end quietly (a cancelled handler task is logged as an error)
        finally:
            writer.close()

    async def _next(self, writer: asyncio.StreamWriter) -> None:
        self.next_calls += 1
        outcome, body = await self._queue.get()  # Lambda blocks here too (until teardown)
        extra = {
            "Lambda-Runtime-Aws-Request-Id": outcome.request_id,
            "Lambda-Runtime-Deadline-Ms": str(outcome.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": ARN,
            "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0",
            "Content-Type": "application/json",
        }
        await _answer(writer, 200, body, extra)

    async def _response(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, outcome: Outcome
    ) -> None:
        outcome.kind = "response"
        assert outcome.headers.get("transfer-encoding") == "chunked"
        try:
            while True:
                size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), WAIT)
                size = int(size_line.strip(), 16)
                if size == 0:
                    break
                data = await reader.readexactly(size)
                assert await reader.readexactly(2) == b"\r\n"
                outcome.chunks.append((time.monotonic(), data))
                if self.on_chunk is not None:
                    self.on_chunk(outcome)
            while True:  # trailers, up to the blank line
                line = await asyncio.wait_for(reader.readuntil(b"\r\n"), WAIT)
                if line == b"\r\n":
                    break
                name, _, value = line.decode("latin-1").partition(":")
                outcome.trailers[name.strip()] = value.strip()
            outcome.clean_end = True
            await _answer(writer, 202, b'{"status":"OK"}')
        finally:
            outcome.ended_at = time.monotonic()
            outcome.done.set()


async def _read_length(reader: asyncio.StreamReader, headers: dict) -> bytes:
    return await reader.readexactly(int(headers.get("content-length", "0")))


async def _answer(
    writer: asyncio.StreamWriter, status: int, body: bytes = b"", headers: dict | None = None
) -> None:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
