"""A minimal asyncio client for the Lambda Runtime API, the one place hand-written HTTP is right.

The streamed response must end with HTTP trailers (``Lambda-Runtime-Function-Error-Type`` and
``-Body``) when it fails after the first byte; httpcore always ends a chunked body without
trailers, so no httpx-based client can report such a failure. The Runtime API is a plain
HTTP/1.1 server on a local address (``AWS_LAMBDA_RUNTIME_API``): one short-lived connection per
call keeps this client small and immune to stale keep-alive state.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass
from urllib.parse import quote

API = "/2018-06-01/runtime"
PRELUDE_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
ERROR_TYPE_TRAILER = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"

_MAX_HEAD = 64 * 1024  # status line and headers of a Runtime API answer
_MAX_BODY = 32 * 1024 * 1024  # an invocation event (Lambda's own request limit is lower)
_ANSWER_TIMEOUT = 30.0  # seconds for the Runtime API to acknowledge a POST


class RuntimeAPIError(Exception):
    """The Runtime API could not be reached or answered unexpectedly."""


@dataclass(frozen=True, slots=True)
class Invocation:
    request_id: str
    deadline_ms: int | None  # Unix epoch milliseconds, from Lambda-Runtime-Deadline-Ms
    function_arn: str | None
    trace_id: str | None
    body: bytes


def error_document(error_type: str, message: str) -> bytes:
    """The error JSON Lambda expects on /error, /init/error and in the error trailer."""
    doc = {"errorMessage": message, "errorType": error_type, "stackTrace": []}
    return json.dumps(doc, separators=(",", ":")).encode()


class RuntimeAPI:
    def __init__(self, address: str) -> None:
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"AWS_LAMBDA_RUNTIME_API must be host:port, got {address!r}")
        self.host = host.strip("[]")  # an IPv6 literal comes bracketed
        self.port = int(port)
        self.address = address

    async def next_invocation(self) -> Invocation:
        """Wait (as long as it takes: Lambda freezes us meanwhile) for the next event."""
        status, headers, body = await self._call("GET", f"{API}/invocation/next", timeout=None)
        if status != 200:
            raise RuntimeAPIError(f"/invocation/next answered {status}")
        request_id = headers.get("lambda-runtime-aws-request-id")
        if not request_id:
            raise RuntimeAPIError("/invocation/next gave no Lambda-Runtime-Aws-Request-Id")
        deadline = headers.get("lambda-runtime-deadline-ms", "")
        return Invocation(
            request_id,
            int(deadline) if deadline.isdigit() else None,
            headers.get("lambda-runtime-invoked-function-arn"),
            headers.get("lambda-runtime-trace-id"),
            body,
        )

    async def invocation_error(self, request_id: str, error_type: str, message: str) -> int:
        """Report an invocation that failed before any response byte was sent."""
        path = f"{API}/invocation/{_id(request_id)}/error"
        return await self._post_error(path, error_type, message)

    async def init_error(self, error_type: str, message: str) -> int:
        """Report that the function could not start (a bad setting, say)."""
        return await self._post_error(f"{API}/init/error", error_type, message)

    async def start_stream(
        self, request_id: str, content_type: str = PRELUDE_CONTENT_TYPE
    ) -> ResponseStream:
        """Open the streamed response: headers now, body chunks with ``write``."""
        reader, writer = await self._connect()
        head = (
            f"POST {API}/invocation/{_id(request_id)}/response HTTP/1.1\r\n"
            f"Host: {self.address}\r\n"
            "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
            "Transfer-Encoding: chunked\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Trailer: {ERROR_TYPE_TRAILER}, {ERROR_BODY_TRAILER}\r\n"
            "\r\n"
        )
        writer.write(head.encode("latin-1"))
        return ResponseStream(reader, writer)

    async def _post_error(self, path: str, error_type: str, message: str) -> int:
        status, _, _ = await self._call(
            "POST",
            path,
            body=error_document(error_type, message),
            headers={
                "Content-Type": "application/json",
                "Lambda-Runtime-Function-Error-Type": _token(error_type),
            },
            timeout=_ANSWER_TIMEOUT,
        )
        return status

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection(self.host, self.port, limit=_MAX_HEAD)
        except OSError as exc:
            raise RuntimeAPIError(
                f"cannot reach the Runtime API at {self.address}: {exc}"
            ) from None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout: float | None,
    ) -> tuple[int, dict[str, str], bytes]:
        reader, writer = await self._connect()
        try:
            lines = [f"{method} {path} HTTP/1.1", f"Host: {self.address}", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
            if method != "GET":
                lines.append(f"Content-Length: {len(body)}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            async with asyncio.timeout(timeout):
                return await read_response(reader)
        except (OSError, ValueError, EOFError, asyncio.LimitOverrunError) as exc:
            # ValueError: a malformed chunk size; EOFError: the answer was cut short.
            raise RuntimeAPIError(f"{method} {path}: {type(exc).__name__}") from None
        except TimeoutError:
            raise RuntimeAPIError(f"{method} {path}: no answer in {timeout} s") from None
        finally:
            writer.close()


class ResponseStream:
    """One streamed response body in HTTP/1.1 chunked encoding, ended with optional trailers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.bytes_sent = 0

    async def write(self, data: bytes) -> None:
        """Send one chunk now (``RuntimeAPIError`` if the Runtime API went away)."""
        if not data:
            return  # an empty chunk would end the body
        try:
            self._writer.write(b"%x\r\n%b\r\n" % (len(data), data))
            await self._writer.drain()
        except OSError as exc:
            raise RuntimeAPIError(f"streamed response: {type(exc).__name__}") from None
        self.bytes_sent += len(data)

    async def end(self, error_type: str | None = None, message: str = "") -> int:
        """Finish the body; with ``error_type``, report a failure in the trailers. Returns the
        Runtime API's status (202 when it accepted the response)."""
        last = b"0\r\n"
        if error_type is not None:
            encoded = base64.b64encode(error_document(error_type, message)).decode("ascii")
            last += f"{ERROR_TYPE_TRAILER}: {_token(error_type)}\r\n".encode("latin-1")
            last += f"{ERROR_BODY_TRAILER}: {encoded}\r\n".encode("latin-1")
        try:
            self._writer.write(last + b"\r\n")
            await self._writer.drain()
            async with asyncio.timeout(_ANSWER_TIMEOUT):
                status, _, _ = await read_response(self._reader)
            return status
        except (OSError, ValueError, EOFError, asyncio.LimitOverrunError) as exc:
            raise RuntimeAPIError(f"streamed response: {type(exc).__name__}") from None
        except TimeoutError:
            raise RuntimeAPIError("streamed response: no answer from the Runtime API") from None
        finally:
            self.close()

    def close(self) -> None:
        self._writer.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response: status, lower-cased headers, body (length, chunked or EOF)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise RuntimeAPIError(f"bad status line from the Runtime API: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    elif length is not None and length.isdigit():
        if int(length) > _MAX_BODY:
            raise RuntimeAPIError(f"Runtime API body too large ({length} bytes)")
        body = await reader.readexactly(int(length))
    else:
        body = await reader.read(_MAX_BODY)
    return int(parts[1]), headers, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            for _ in range(100):  # skip trailers, up to the blank line that ends them
                if await reader.readuntil(b"\r\n") == b"\r\n":
                    return b"".join(parts)
            raise RuntimeAPIError("too many trailers from the Runtime API")
        total += size
        if total > _MAX_BODY:
            raise RuntimeAPIError("Runtime API body too large")
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _id(request_id: str) -> str:
    return quote(request_id, safe="")


def _token(value: str) -> str:
    """A header-safe error type: printable ASCII without separators that would break a line."""
    cleaned = "".join(c for c in value if 32 < ord(c) < 127)
    return cleaned or "Error"
