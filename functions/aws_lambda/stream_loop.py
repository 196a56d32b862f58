"""The streaming runtime loop: Python on Lambda with true response streaming, no extra binary.

``stream-wrapper`` (``AWS_LAMBDA_EXEC_WRAPPER``) starts ``python -m
functions.aws_lambda.stream_loop`` in place of the managed runtime's own loop. It asks the
Runtime API for each invocation, runs core on it, and streams core's response back as it comes:
the JSON prelude (status, headers, cookies) and 8 NUL bytes, then every upstream chunk the moment
httpx hands it over. One process serves many invocations in a row with one httpx client.

What the client sees when things go wrong:
- decided before the first byte (4xx/5xx from core, an upstream that broke before sending
  anything, a deadline reached while waiting): a normal response with that status and an error
  JSON body;
- the upstream breaks after streaming began, or ends without its end marker: the terminal
  error event of the route's protocol (``core.observer``), then the
  ``Lambda-Runtime-Function-Error-*`` trailers;
- the deadline or a stream cap is reached: the upstream is stopped, and an event stream gets
  its terminal error event and a clean end (a non-SSE body can only be flagged with the trailers);
- the event is not an HTTP event, or the loop itself fails before the first byte:
  ``POST /invocation/{id}/error``; a bad setting at start-up: ``POST /init/error`` naming it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

from edgerelay.core import ConfigError, Response, config_error, error_response
from edgerelay.core.requestlog import with_request_id

from .app import LambdaApp, create_app
from .events import EventError, HttpEvent, decode_event_bytes, prelude
from .limits import Limits, limits_for, size_cut, time_cut
from .pump import pump
from .request_log import write_log
from .runtime_api import Invocation, ResponseStream, RuntimeAPI, RuntimeAPIError

log = logging.getLogger("edgerelay")


class StreamLoop:
    def __init__(
        self, runtime: RuntimeAPI, app: LambdaApp, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.runtime = runtime
        self.gateway = app.gateway
        self.settings = app.settings
        self.clock = clock  # wall clock: Lambda's deadline is in Unix epoch milliseconds

    async def run(self, max_invocations: int | None = None) -> None:
        """Serve invocations until the Runtime API fails (then Lambda restarts the process)."""
        served = 0
        while max_invocations is None or served < max_invocations:
            invocation = await self.runtime.next_invocation()
            served += 1
            await self.handle(invocation)

    async def handle(self, invocation: Invocation) -> None:
        # As the managed runtimes do: this invocation's trace id, never the previous one's.
        if invocation.trace_id:
            os.environ["_X_AMZN_TRACE_ID"] = invocation.trace_id
        else:
            os.environ.pop("_X_AMZN_TRACE_ID", None)
        try:
            await self._invoke(invocation)
        except RuntimeAPIError as exc:
            # The Runtime API went away mid-response: there is nobody left to tell.
            log.error("response to %s not delivered: %s", invocation.request_id, exc)
        except Exception:  # a bug of ours: fail this invocation, keep the process serving
            log.exception("invocation %s failed", invocation.request_id)
            try:  # refused by the Runtime API if the response had already begun: harmless
                await self.runtime.invocation_error(
                    invocation.request_id, "Edgerelay.InternalError", "Internal gateway error."
                )
            except RuntimeAPIError:
                pass

    async def _invoke(self, invocation: Invocation) -> None:
        try:
            event = decode_event_bytes(invocation.body)
        except EventError as exc:
            await self.runtime.invocation_error(
                invocation.request_id, "Edgerelay.InvalidEvent", str(exc)
            )
            return
        loop = asyncio.get_running_loop()
        remaining = None
        if invocation.deadline_ms is not None:
            remaining = invocation.deadline_ms / 1000 - self.clock()
        limits = limits_for(self.settings, remaining=remaining, loop=loop)
        # Retries and fallbacks stop at the loop's own stop time (Lambda's deadline less the
        # margin, or the stream cap), on the wall clock the gateway's policy reads.
        deadline = self.clock() + (limits.stop_at - loop.time())
        try:
            response = await self._respond(event, limits, deadline)
        except Exception as exc:  # a bug of ours, before any byte went out
            log.exception("invocation %s failed before streaming", invocation.request_id)
            await self.runtime.invocation_error(
                invocation.request_id, "Edgerelay." + type(exc).__name__, "Internal gateway error."
            )
            return
        sink = _RuntimeSink(self.runtime, invocation.request_id)
        try:
            await self._stream(invocation, response, limits, sink)
        finally:
            await response.aclose()  # stop the upstream whatever happened
            write_log(response.log, self.gateway, sink.bytes, sink.status, sink.first)

    async def _respond(self, event: HttpEvent, limits: Limits, deadline: float) -> Response:
        if event.error is not None:
            answer = error_response(event.error)
            self.gateway.logged(event.request, answer)
            return answer
        try:
            async with asyncio.timeout_at(limits.stop_at):
                return await self.gateway.handle(event.request, deadline=deadline)
        except TimeoutError:
            answer = error_response(time_cut(limits, self.settings).error)
            self.gateway.logged(event.request, answer)
            return answer

    async def _stream(
        self, invocation: Invocation, response: Response, limits: Limits, sink: _RuntimeSink
    ) -> None:
        try:
            outcome = await pump(
                response,
                sink,
                limits,
                self.settings,
                max_bytes=limits.max_bytes,
                size_cut=size_cut(self.settings),
            )
            assert sink.stream is not None  # pump always starts the sink
            await self._finish(sink.stream, invocation, outcome.error_type, outcome.message)
        finally:
            if sink.stream is not None:
                sink.stream.close()

    async def _finish(
        self,
        stream: ResponseStream,
        invocation: Invocation,
        error_type: str | None = None,
        message: str = "",
    ) -> None:
        status = await stream.end(error_type, message)
        if status >= 300:
            log.error("Runtime API refused the response to %s: %s", invocation.request_id, status)


class _RuntimeSink:
    """The streaming function's sink: the prelude (status, headers) goes out with the first
    chunk, every chunk as it comes. Once started the status is sent: nothing can replace it."""

    replaceable = False

    def __init__(self, runtime: RuntimeAPI, request_id: str) -> None:
        self._runtime = runtime
        self._request_id = request_id
        self._prelude = b""
        self.stream: ResponseStream | None = None
        # For the log line: the status sent, body bytes sent, when the first one left.
        self.status: int | None = None
        self.bytes = 0
        self.first: float | None = None

    async def start(self, response: Response) -> None:
        self.stream = await self._runtime.start_stream(self._request_id)
        self._prelude = prelude(response.status, with_request_id(response))
        self.status = response.status

    async def write(self, chunk: bytes) -> None:
        assert self.stream is not None
        if chunk:
            self.bytes += len(chunk)
            if self.first is None:
                self.first = time.time()
        if self._prelude:
            chunk, self._prelude = self._prelude + chunk, b""
        if chunk:  # an empty write would end the chunked upload early
            await self.stream.write(chunk)


async def serve(runtime: RuntimeAPI) -> int:
    """Start up (reporting a bad setting to /init/error), then loop until stopped."""
    try:
        app = create_app()
    except ConfigError as exc:
        message = config_error(exc).message
        log.error("%s", message)
        await runtime.init_error("Edgerelay.ConfigError", message)
        return 1
    except Exception as exc:  # e.g. a dependency missing from the package
        log.exception("start-up failed")
        await runtime.init_error("Edgerelay." + type(exc).__name__, "The gateway could not start.")
        return 1
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)  # Lambda's shutdown, or a test's
    try:
        await StreamLoop(runtime, app).run()
    except asyncio.CancelledError:
        return 0
    except RuntimeAPIError as exc:
        log.error("Runtime API: %s", exc)
        return 1
    finally:
        await app.fetch.aclose()
    return 0


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API")
    if not address:
        print("edgerelay: AWS_LAMBDA_RUNTIME_API is not set (run inside Lambda)", file=sys.stderr)
        return 2
    try:
        runtime = RuntimeAPI(address)
    except ValueError as exc:
        print(f"edgerelay: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(runtime))
    except RuntimeAPIError as exc:  # could not even report the failure
        print(f"edgerelay: Runtime API: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
