"""The oracle for /v1/responses output: the official openai SDK's typed models (CPython only).

Every event is parsed with ``ResponseStreamEvent`` (the discriminated union the SDK itself
uses) and must land on the class named by its ``type``; every response object with
``Response``. Parsing is strict pydantic validation, not the SDK's lenient ``construct``.
"""

from __future__ import annotations

import json

from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from edgerelay.core.sse import SSEParser

_EVENTS = TypeAdapter(ResponseStreamEvent)
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def events(raw: bytes) -> list:
    """The typed events of a whole Responses SSE body, checked frame by frame: ``event:`` equals
    the JSON ``type``, ``sequence_number`` counts from 0, one terminal event, last."""
    parser = SSEParser()
    frames = [*parser.feed(raw), *parser.finish()]
    typed = []
    for n, frame in enumerate(frames):
        data = json.loads(frame.data)
        assert frame.event == data["type"], frame
        assert data["sequence_number"] == n, (n, data)
        event = _EVENTS.validate_python(data)
        assert event.type == data["type"]
        if data["type"] in TERMINAL:
            response(data["response"])
        typed.append(event)
    kinds = [e.type for e in typed]
    assert kinds[:2] == ["response.created", "response.in_progress"], kinds[:3]
    assert sum(k in TERMINAL for k in kinds) == 1 and kinds[-1] in TERMINAL, kinds[-3:]
    _check_nesting(typed)
    return typed


def response(data: dict | bytes) -> Response:
    if isinstance(data, bytes):
        data = json.loads(data)
    return Response.model_validate(data)


def _check_nesting(typed: list) -> None:
    """Items open and close in order: added, then their part and delta events, then done; the
    .done texts equal the deltas; the terminal response's output equals the items done."""
    open_items: dict[int, object] = {}
    done_items = []
    texts: dict[tuple, str] = {}
    for event in typed:
        kind = event.type
        if kind == "response.output_item.added":
            assert not open_items, "items are not interleaved"
            assert event.output_index == len(done_items)
            open_items[event.output_index] = event.item
        elif kind == "response.output_item.done":
            assert event.output_index in open_items
            del open_items[event.output_index]
            done_items.append(event.item)
        elif kind.endswith(".delta"):
            assert event.output_index in open_items, kind
            key = (event.output_index, kind.rsplit(".", 1)[0])
            texts[key] = texts.get(key, "") + event.delta
        elif kind in ("response.output_text.done", "response.reasoning_summary_text.done"):
            assert texts.get((event.output_index, kind.rsplit(".", 1)[0]), "") == event.text
        elif kind == "response.function_call_arguments.done":
            streamed = texts.get((event.output_index, "response.function_call_arguments"))
            assert streamed in (None, event.arguments), (streamed, event.arguments)
    final = typed[-1].response
    if final.status != "failed":  # a failed stream ends where it broke, items left open
        assert not open_items
        assert [i.model_dump() for i in final.output] == [i.model_dump() for i in done_items]


def text_of(resp: Response) -> str:
    return "".join(
        part.text
        for item in resp.output
        if item.type == "message"
        for part in item.content
        if part.type == "output_text"
    )
