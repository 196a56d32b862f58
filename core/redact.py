"""Configured secrets never leave the gateway: not in an error message, not in a header value
passed on from an upstream, not in a log line.

An upstream may echo the request's headers in its error body, put the key in a header the
gateway passes on (``x-request-id``), or quote it masked as OpenAI does ("sk-ab****wxyz"):
each is replaced by ``[redacted]``. The set of secrets is every provider key plus each setting
named in ``config.SECRET_FIELDS`` (a setting that holds a secret registers there). Bodies of
successful answers are relayed as they are: only error answers are rewritten.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from functools import lru_cache

from .config import SECRET_FIELDS, Config
from .http import Response

REDACTED = "[redacted]"
# Shorter values would match ordinary words; no real key or secret is this short.
MIN_LENGTH = 8
# How providers quote a key they refuse: a few leading characters, stars, the last four.
_MASKED = r"[\w-]{0,24}\*{3,64}"
_MASKED_LENGTH = 24 + 64 + 4


def configured_secrets(config: Config) -> list[str]:
    """Every secret the configuration holds."""
    found = [p.api_key for p in config.providers.values() if p.api_key]
    # Identity keeps its secrets (JWT, session, Turnstile) in its own settings object.
    found.extend(getattr(config.identity, "secrets", ()))
    found.extend(getattr(config.cache, "secrets", ()))  # the cache's admin key
    for field in SECRET_FIELDS:
        value = getattr(config, field, None)
        if isinstance(value, str):
            found.append(value)
        elif value:
            found.extend(v for v in value if isinstance(v, str))
    return found


def redactor_for(config: Config) -> Redactor:
    """The ``Redactor`` for ``config``'s secrets (built once per set of secrets: the Worker
    makes a Gateway per request)."""
    return _redactor(tuple(sorted(set(configured_secrets(config)))))


@lru_cache(maxsize=16)
def _redactor(secrets: tuple[str, ...]) -> Redactor:
    return Redactor(secrets)


class Redactor:
    """Replaces each secret, and its masked form, by ``[redacted]`` in text, bytes, header
    values, streamed bodies, responses and log records."""

    __slots__ = ("_bytes", "_bytes_marks", "_text", "_text_marks", "window")

    def __init__(self, secrets: Iterable[str]) -> None:
        kept = sorted({s for s in secrets if len(s) >= MIN_LENGTH}, key=len, reverse=True)
        self._text: re.Pattern[str] | None = None
        self._bytes: re.Pattern[bytes] | None = None
        # What any match contains: a whole secret, or the stars of a masked one. Looking for
        # these first is a few substring scans; the pattern itself tries its masked branch at
        # every offset, which costs ~0.1 ms on a log line that holds no secret at all.
        self._text_marks = (*kept, "***")
        self._bytes_marks = tuple(mark.encode() for mark in self._text_marks)
        self.window = 0  # the longest text a match can span
        if kept:
            whole = [re.escape(s) for s in kept]
            masked = [_MASKED + re.escape(s[-4:]) for s in kept]
            self._text = re.compile("|".join(whole + masked))
            self._bytes = re.compile("|".join(whole + masked).encode())
            self.window = max(len(kept[0].encode()), _MASKED_LENGTH)

    def __bool__(self) -> bool:
        return self._text is not None

    def text(self, value: str) -> str:
        if self._text is None or not any(mark in value for mark in self._text_marks):
            return value
        return self._text.sub(REDACTED, value)

    def data(self, value: bytes) -> bytes:
        if self._bytes is None or not any(mark in value for mark in self._bytes_marks):
            return value
        return self._bytes.sub(REDACTED.encode(), value)

    def headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        pattern, marks = self._text, self._text_marks
        if pattern is None or not any(mark in v for _, v in headers for mark in marks):
            return headers
        return [(name, pattern.sub(REDACTED, value)) for name, value in headers]

    async def stream(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``chunks`` redacted, as they arrive: only the last ``window - 1`` bytes are held
        back, since a secret may be split across two chunks."""
        pattern, hold = self._bytes, self.window - 1
        if pattern is None:
            async for chunk in chunks:
                yield chunk
            return
        carry = b""
        async for chunk in chunks:
            data = carry + chunk
            cut = len(data) - hold
            if cut <= 0:
                carry = data
                continue
            out: list[bytes] = []
            pos = 0
            # A match starting before the cut is whole within data (none is longer than
            # window); one starting after it waits for the next chunk.
            for match in pattern.finditer(data):
                if match.start() >= cut:
                    break
                out += (data[pos : match.start()], REDACTED.encode())
                pos = match.end()
            cut = max(cut, pos)
            out.append(data[pos:cut])
            carry = data[cut:]
            yield b"".join(out)
        if carry:
            yield self.data(carry)

    def response(self, response: Response) -> Response:
        """Header values always; the body only of an error answer (a success is relayed as
        is). An error streamed from an upstream is rewritten on the way, so a platform that
        could hand the upstream's body on untouched (a Worker) must not."""
        if self._text is None:
            return response
        response.headers = self.headers(response.headers)
        if response.status < 400:
            return response
        if response.body:
            response.body = self.data(response.body)
        if response.stream is not None:
            response.stream = self.stream(response.stream)
            if response.upstream is not None:
                response.upstream = _Rewritten(response.upstream)
        return response

    def filter(self, record) -> bool:
        """A ``logging`` filter (install it on a handler): the record's message and traceback
        redacted before any formatter sees them."""
        if self._text is None:
            return True
        record.msg = self.text(record.getMessage())
        record.args = ()
        if record.exc_info and not record.exc_text:
            import traceback  # only for a record with a traceback

            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self.text(record.exc_text)
        return True


class _Rewritten:
    """The upstream of a response whose body is rewritten on the way: still closed with the
    response, but without its native body (which would bypass the rewriting)."""

    __slots__ = ("_upstream",)
    native_body = None

    def __init__(self, upstream) -> None:
        self._upstream = upstream

    @property
    def status(self) -> int:
        return self._upstream.status

    @property
    def headers(self):
        return self._upstream.headers

    async def aclose(self) -> None:
        await self._upstream.aclose()
