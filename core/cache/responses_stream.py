"""OpenAI's Responses event stream (``/v1/responses`` passed through to an upstream that speaks
it) as the cache records and serves it.

A recorded stream is a whole answer when its last lifecycle event is ``response.completed``,
or ``response.incomplete`` for ``max_output_tokens`` (the answer the request's limit allows,
as chat's ``finish_reason: length``); ``response.failed``, an ``error`` event or a stream that
ends without either is never stored. Its JSON form is that event's ``response`` object (what
the upstream answers a request without ``stream``). Ids stay as recorded, as chat's do: the
``resp_…`` id is the one the upstream stored, so ``previous_response_id`` continues from a hit.

The response object also echoes three request fields the key leaves out: ``metadata``,
``user`` and ``safety_identifier``. An entry holds them neutral (``{}``, null, null) and every
client gets its own back (the lifecycle events rewritten only for a client that sent one), so
one client's identifiers never reach another that shares an entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .. import safejson
from ..errors import GatewayError
from ..framing import EventAligner
from .entry import stream_objects

ECHOED = ("metadata", "user", "safety_identifier")
NEUTRAL: Mapping[str, Any] = {"metadata": {}, "user": None, "safety_identifier": None}
_ENDS = ("response.completed", "response.incomplete", "response.failed")
_EVENT_END = re.compile(rb"\r\n\r\n|\r\n\n|\r\r|\n\r\n|\n\n")
_LINE = re.compile(rb"\r\n|\r|\n")


def echoes(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a request's response echoes of the fields the key leaves out."""
    out = {}
    for name in ECHOED:
        value = body.get(name)
        out[name] = NEUTRAL[name] if value is None else value
    return out


def neutral(echoed: Mapping[str, Any]) -> bool:
    return all(echoed[name] == NEUTRAL[name] for name in ECHOED)


def _last_end(events: list[dict]) -> dict | None:
    """The event that ended the stream (a lifecycle end or an error), if any."""
    for event in reversed(events):
        if event.get("type") in _ENDS or event.get("type") == "error":
            return event
    return None


def _whole(event: dict | None) -> dict | None:
    """The final response when ``event`` ends a whole answer (see the module), else None."""
    if event is None or not isinstance(event.get("response"), dict):
        return None
    if event.get("type") == "response.completed":
        return event["response"]
    if event.get("type") == "response.incomplete":
        details = event["response"].get("incomplete_details")
        if isinstance(details, dict) and details.get("reason") == "max_output_tokens":
            return event["response"]
    return None


def forms(batches: tuple[bytes, ...]) -> tuple[tuple[bytes, ...], tuple[bytes, ...], bytes] | None:
    """What an entry holds for a recorded stream (``Recording``'s ``forms``): the batches with
    neutral echoes, no second stream form, and the JSON answer; None when the stream is not a
    whole answer (see the module)."""
    events = stream_objects(batches)[0]
    if any(e.get("type") == "error" for e in events):
        return None
    final = _whole(_last_end(events))
    if final is None:
        return None
    rewriter = EchoRewriter(NEUTRAL)
    kept = [rewriter.feed(batch) for batch in batches]
    kept.append(rewriter.finish())
    return tuple(b for b in kept if b), (), safejson.dumps(_echoed(final, NEUTRAL))


def json_answer(batches: Iterable[bytes], echoed: Mapping[str, Any]) -> bytes:
    """A non-streaming client's answer from a stream: its final ``response`` object with the
    client's own echoes (``response.incomplete`` for any reason included: it is an answer,
    even when not one to store); a ``GatewayError`` (502, the upstream's message when it gave
    one) for a stream that failed or broke off."""
    events = stream_objects(batches)[0]
    end = _last_end(events)
    if end is not None and end.get("type") in ("response.completed", "response.incomplete"):
        response = end.get("response")
        if isinstance(response, dict):
            return safejson.dumps(_echoed(response, echoed))
    raise _failure(end)


def _failure(end: dict | None) -> GatewayError:
    message = None
    if end is not None and end.get("type") == "error":
        message = end.get("message")
        if not isinstance(message, str) and isinstance(end.get("error"), dict):
            message = end["error"].get("message")
    elif end is not None and isinstance(end.get("response"), dict):
        error = end["response"].get("error")
        message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and message:
        return GatewayError(502, message, code="bad_gateway")
    return GatewayError(502, "The upstream stream ended before the answer was complete.")


def _echoed(response: dict, echoed: Mapping[str, Any]) -> dict:
    out = dict(response)
    for name in ECHOED:
        if name in out or echoed[name] != NEUTRAL[name]:
            out[name] = echoed[name]
    return out


def with_echoes(answer: bytes, echoed: Mapping[str, Any]) -> bytes:
    """A stored JSON answer with a client's own echoes."""
    return safejson.dumps(_echoed(safejson.loads(answer), echoed))


class EchoRewriter:
    """``feed(batch)``: the batch with the echoed fields of each response object (in
    ``response.created``, ``response.in_progress``, ``response.completed``, …) set to
    ``echoed``; every other event's bytes untouched, whole events only (an unfinished one is
    held until it ends; ``finish()`` gives what is left)."""

    __slots__ = ("_aligner", "_echoed")

    def __init__(self, echoed: Mapping[str, Any]) -> None:
        self._echoed = echoed
        self._aligner = EventAligner()

    def feed(self, batch: bytes) -> bytes:
        return self._rewrite(self._aligner.feed(batch))

    def finish(self) -> bytes:
        return self._rewrite(self._aligner.flush())

    def _rewrite(self, data: bytes) -> bytes:
        if b'"response"' not in data:
            return data  # no response object here (deltas, items): the bytes as they are
        out, start = [], 0
        for mark in _EVENT_END.finditer(data):
            out.append(self._event(data[start : mark.start()], data[mark.start() : mark.end()]))
            start = mark.end()
        out.append(data[start:])
        return b"".join(out)

    def _event(self, raw: bytes, end: bytes) -> bytes:
        if b'"response"' not in raw:
            return raw + end
        lines = _LINE.split(raw)
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        try:
            body = safejson.loads(b"\n".join(data))
        except (ValueError, RecursionError):
            return raw + end
        if not isinstance(body, dict) or not isinstance(body.get("response"), dict):
            return raw + end
        echoed = _echoed(body["response"], self._echoed)
        if echoed == body["response"]:
            return raw + end  # already this client's: the bytes as they came
        body["response"] = echoed
        kept = [line for line in lines if not line.startswith(b"data:")]
        return b"\n".join([*kept, b"data: " + safejson.dumps(body)]) + b"\n\n"
