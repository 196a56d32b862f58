"""The request's JSON log line on the Worker, printed to stdout (Workers Logs and `wrangler
tail` read it) once the answer's body is done. Core makes the line (``RequestLog.finish``:
EDGERELAY_LOG, configured secrets redacted); this counts what the Worker sent."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from worker_io import _NULL_BODY, to_worker_response, zero_copied

from edgerelay.core import Response
from edgerelay.core.requestlog import with_request_id


def respond(response: Response, ctx, *, zero_copy: bool = True):
    """``to_worker_response`` with the request's line: written now for a body sent at once
    (none, or the upstream's stream handed over unread: its size is not seen, null), else
    when the streamed body ends, however it ends; ``x-edgerelay-request-id`` on the answer."""
    response.headers = with_request_id(response)
    if response.status in _NULL_BODY:
        write_log(response, 0)
    elif zero_copied(response, zero_copy):
        write_log(response, None)
    elif response.stream is None:
        write_log(response, len(response.body))
    else:
        response.stream = _counted(response, response.stream)
    return to_worker_response(response, ctx, zero_copy=zero_copy)


def write_log(response: Response, sent: int | None, first: float | None = None) -> None:
    line = response.log.finish(time.time(), sent, first) if response.log is not None else None
    if line:
        print(line)


async def _counted(response: Response, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    sent, first = 0, None
    try:
        async for chunk in stream:
            if chunk and first is None:
                first = time.time()
            sent += len(chunk)
            yield chunk
    finally:
        write_log(response, sent, first)
