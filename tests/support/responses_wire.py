"""OpenAI Responses event streams as OpenAI's own /v1/responses sends them (standard library
only): for the cache's tests of a passed-through Responses request."""

from __future__ import annotations

import json


def response(status="in_progress", text=None, *, reason=None, error=None, **echo) -> dict:
    """A ``response`` object as the lifecycle events carry it."""
    out = {
        "id": "resp_up1",
        "object": "response",
        "created_at": 1,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": reason} if reason else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": "gpt-4.1-mini-2025-04-14",
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": {},
        **echo,
    }
    if text is not None:
        out["output"] = [_message(text, "completed")]
        out["usage"] = {
            "input_tokens": 3,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 2,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 5,
        }
    return out


def _message(text: str, status: str) -> dict:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {
        "id": "msg_up1",
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content if status == "completed" else [],
    }


def event(kind: str, n: int, **fields) -> bytes:
    body = {"type": kind, "sequence_number": n, **fields}
    return f"event: {kind}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


def head(**echo) -> list[bytes]:
    """``response.created`` … the message's text part opened (sequence numbers 0-3)."""
    return [
        event("response.created", 0, response=response(**echo)),
        event("response.in_progress", 1, response=response(**echo)),
        event("response.output_item.added", 2, output_index=0, item=_message("", "in_progress")),
        event(
            "response.content_part.added",
            3,
            item_id="msg_up1",
            output_index=0,
            content_index=0,
            part={"type": "output_text", "text": "", "annotations": []},
        ),
    ]


def delta(piece: str, n: int) -> bytes:
    return event(
        "response.output_text.delta",
        n,
        item_id="msg_up1",
        output_index=0,
        content_index=0,
        delta=piece,
        logprobs=[],
    )


def answer(words=("Hel", "lo", " there"), end="response.completed", **echo) -> list[bytes]:
    """A whole stream, one event per batch: head, one delta per word, the part and item done,
    then ``end`` (``response.completed``; ``response.incomplete`` for max_output_tokens)."""
    text = "".join(words)
    n = 4
    out = head(**echo)
    for word in words:
        out.append(delta(word, n))
        n += 1
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    where = {"item_id": "msg_up1", "output_index": 0, "content_index": 0}
    out.append(event("response.output_text.done", n, **where, text=text, logprobs=[]))
    out.append(event("response.content_part.done", n + 1, **where, part=part))
    item = _message(text, "completed")
    out.append(event("response.output_item.done", n + 2, output_index=0, item=item))
    if end == "response.completed":
        final = response("completed", text, **echo)
    else:
        final = response("incomplete", text, reason="max_output_tokens", **echo)
    out.append(event(end, n + 3, response=final))
    return out


def failed(words=("Hel",), **echo) -> list[bytes]:
    """A stream that ends with ``response.failed`` after some text."""
    out = head(**echo) + [delta(w, 4 + i) for i, w in enumerate(words)]
    error = {"code": "server_error", "message": "The model broke down."}
    final = response("failed", error=error, **echo)
    out.append(event("response.failed", 4 + len(words), response=final))
    return out


def text_of(batches: list[bytes]) -> list[str]:
    """The text deltas of a Responses stream, in order (to compare text splits)."""
    pieces = []
    for batch in batches:
        for line in batch.split(b"\n"):
            if line.startswith(b"data: {"):
                body = json.loads(line[6:])
                if body.get("type") == "response.output_text.delta":
                    pieces.append(body["delta"])
    return pieces
