"""Reading a request body within ``EDGERELAY_MAX_BODY_BYTES``, as every adapter must: refuse
a declared ``Content-Length`` over the limit before reading a byte, and stop reading a body
without one (chunked) as soon as it grows past the limit."""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping


def declared_too_large(headers: Mapping[str, str], limit: int) -> bool:
    """Whether the request's ``Content-Length`` alone is over ``limit``."""
    declared = headers.get("content-length")
    return declared is not None and declared.isdigit() and int(declared) > limit


async def read_limited(chunks: AsyncIterable[bytes], limit: int) -> bytes | None:
    """The whole body from ``chunks``, or None as soon as it grows past ``limit`` (an iterator
    with ``aclose`` is then closed, so the adapter can stop the upload at once)."""
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                return None
            parts.append(chunk)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    return parts[0] if len(parts) == 1 else b"".join(parts)
