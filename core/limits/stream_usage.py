"""Reading usage from streams as they pass, and hiding what asking for it added.

``UsageMeter`` watches a stream's SSE events (it parses only events that mention usage) and
keeps the last usage each API reported: OpenAI-compatible usage chunks, the Responses API's
``response.completed``, Anthropic's ``message_start`` + ``message_delta``, Gemini's
``usageMetadata``. It also counts the bytes relayed, for the estimate when no usage comes.

``IncludeUsageStripper`` undoes ``stream_options.include_usage`` when the gateway added it (the
client did not ask): it drops the ``choices: []`` usage chunk and removes the ``"usage": null``
member of the other chunks, so the client gets the bytes it would have got without it.
"""

from __future__ import annotations

import json
import re

from .. import safejson
from ..observer import events_from
from ..sse import SSEParser
from .usage import Usage, from_anthropic, from_gemini, from_openai


def _loads(data: str):
    try:
        return safejson.loads(data)
    except (ValueError, RecursionError):
        return None


_USAGE = (b"sage",)  # usage, usageMetadata


class UsageMeter:
    """``feed(chunk)`` with the relayed bytes (or ``events(data)`` with whole events); ``usage``
    is the last reported usage or None."""

    __slots__ = ("_anthropic_input", "_parser", "bytes", "usage")

    def __init__(self) -> None:
        self._parser: SSEParser | None = None  # made on the first feed: hooks never need it
        self.usage: Usage | None = None
        self.bytes = 0
        self._anthropic_input: Usage | None = None

    def events(self, data: bytes) -> None:
        """Whole events (as the stream observer passes them) that may mention usage: those
        from the first that does on are parsed."""
        for event in events_from(data, _USAGE):
            self.event(event.data)

    def feed(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        parser = self._parser
        if parser is None:
            parser = self._parser = SSEParser()
        # Cheap test first: most chunks carry no usage and are never decoded as JSON.
        if chunk.find(b"sage") < 0 and not (parser._buf or parser._has_data):
            parser.feed(chunk)
            return
        for event in parser.feed(chunk):
            self.event(event.data)

    def finish(self) -> None:
        if self._parser is not None:
            for event in self._parser.finish():
                self.event(event.data)

    def event(self, data: str) -> None:
        """One event's data (also for callers that already parse the stream)."""
        if "sage" not in data:
            return
        obj = _loads(data)
        if not isinstance(obj, dict):
            return
        if "usageMetadata" in obj:  # Gemini: every chunk may carry the running figure
            self.usage = from_gemini(obj["usageMetadata"]) or self.usage
            return
        kind = obj.get("type")
        if kind == "message_start":  # Anthropic: input counts come first
            self._anthropic_input = from_anthropic(_get(obj, "message", "usage"))
            self.usage = self._anthropic_input
        elif kind == "message_delta":  # Anthropic: output_tokens is cumulative
            delta = from_anthropic(obj.get("usage"))
            if delta is not None:
                start = self._anthropic_input or Usage()
                # Newer answers repeat the input counts in message_delta; keep the larger.
                self.usage = Usage(
                    max(start.input, delta.input), delta.output, 0, max(start.cached, delta.cached)
                )
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            self.usage = from_openai(_get(obj, "response", "usage")) or self.usage
        elif isinstance(obj.get("usage"), dict):  # Chat Completions usage chunk
            self.usage = from_openai(obj["usage"]) or self.usage


def _get(obj, *path):
    for name in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_USAGE_NULL = (
    re.compile(rb'\s*,\s*"usage"\s*:\s*null(?=\s*})'),  # last member
    re.compile(rb'\s*,\s*"usage"\s*:\s*null(?=\s*,)'),  # a middle member
    re.compile(rb'(?<={)\s*"usage"\s*:\s*null\s*,'),  # first member
)


def strip_added_usage(data: bytes, meter: UsageMeter) -> bytes:
    """Whole events, without what an added ``stream_options.include_usage`` caused (the usage
    chunk's usage goes to ``meter``). Works on raw events (cut at blank lines) so everything it
    does not remove is passed on byte for byte; an event is only changed after checking that
    the change removed exactly the ``usage`` member (otherwise it is passed on unchanged)."""
    out = []
    start = 0
    for match in _EVENT_END.finditer(data):
        out.append(_without_usage(data[start : match.end()], meter))
        start = match.end()
    if start < len(data):
        out.append(_without_usage(data[start:], meter))
    return b"".join(out)


class IncludeUsageStripper:
    """``feed(chunk) -> bytes`` for the client; ``finish() -> bytes``. Meters usage on the way
    (``strip_added_usage`` over chunks that may cut events anywhere)."""

    __slots__ = ("_buf", "meter")

    def __init__(self, meter: UsageMeter) -> None:
        self._buf = b""
        self.meter = meter

    def feed(self, chunk: bytes) -> bytes:
        buf = self._buf + chunk if self._buf else chunk
        out = []
        start = 0
        while True:
            match = _EVENT_END.search(buf, start)
            if match is None:
                break
            out.append(_without_usage(buf[start : match.end()], self.meter))
            start = match.end()
        self._buf = buf[start:]
        data = b"".join(out)
        if data:
            self.meter.bytes += len(data)
        return data

    def finish(self) -> bytes:
        rest, self._buf = self._buf, b""
        data = _without_usage(rest, self.meter) if rest else b""
        self.meter.bytes += len(data)
        return data


def _without_usage(raw: bytes, meter: UsageMeter) -> bytes:
    """One raw event without what the added option caused in it."""
    if b'"usage"' not in raw:
        return raw
    lines = raw.splitlines(keepends=True)
    data_lines = [i for i, line in enumerate(lines) if line.startswith(b"data:")]
    if len(data_lines) != 1:
        return raw
    index = data_lines[0]
    line = lines[index]
    payload = line[5:].strip()
    obj = _loads(payload.decode("utf-8", "replace"))
    if not isinstance(obj, dict) or "usage" not in obj:
        return raw
    usage = obj["usage"]
    if isinstance(usage, dict):
        meter.usage = from_openai(usage) or meter.usage
        if obj.get("choices") == []:
            return b""  # the chunk the added option caused: the client never asked for it
        return raw
    if usage is not None:
        return raw
    for pattern in _USAGE_NULL:
        changed, count = pattern.subn(b"", line, count=1)
        if count and _same_without_usage(obj, changed[5:].strip()):
            lines[index] = changed
            return b"".join(lines)
    return raw


def _same_without_usage(original: dict, payload: bytes) -> bool:
    stripped = _loads(payload.decode("utf-8", "replace"))
    expected = {k: v for k, v in original.items() if k != "usage"}
    return isinstance(stripped, dict) and json.dumps(stripped) == json.dumps(expected)


def with_include_usage(body: dict) -> dict:
    """A request body asking an OpenAI-compatible upstream for a usage chunk."""
    options = body.get("stream_options")
    options = dict(options) if isinstance(options, dict) else {}
    options["include_usage"] = True
    return {**body, "stream_options": options}
