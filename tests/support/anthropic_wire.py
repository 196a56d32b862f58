"""Anthropic Messages wire format, written from Anthropic's streaming documentation, for tests:
SSE events (``event:`` line + ``data:`` JSON, optionally padded with spaces before the final
``}`` as real streams do), whole streams, JSON answers, and a reader for our OpenAI output.
Standard library only: the core tests that use it also run inside Pyodide."""

from __future__ import annotations

import json

from edgerelay.core.sse import SSEParser

MODEL = "claude-sonnet-4-5-20250929"
MSG_ID = "msg_01TestMessage0000000001"


def event(data: dict, pad: int = 0) -> bytes:
    text = json.dumps(data, separators=(",", ":"))
    if pad:
        text = text[:-1] + " " * pad + "}"
    return f"event: {data['type']}\ndata: {text}\n\n".encode()


def message_start(usage: dict | None = None, msg_id: str = MSG_ID, model: str = MODEL) -> dict:
    message = {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 25, "output_tokens": 1},
    }
    return {"type": "message_start", "message": message}


def block_start(index: int, block: dict) -> dict:
    return {"type": "content_block_start", "index": index, "content_block": block}


def block_delta(index: int, delta: dict) -> dict:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def block_stop(index: int) -> dict:
    return {"type": "content_block_stop", "index": index}


def text_block(index: int, *pieces: str) -> list[dict]:
    return [
        block_start(index, {"type": "text", "text": ""}),
        *(block_delta(index, {"type": "text_delta", "text": p}) for p in pieces),
        block_stop(index),
    ]


def tool_block(index: int, tool_id: str, name: str, *pieces: str) -> list[dict]:
    start = {"type": "tool_use", "id": tool_id, "name": name, "input": {}}
    return [
        block_start(index, start),
        *(block_delta(index, {"type": "input_json_delta", "partial_json": p}) for p in pieces),
        block_stop(index),
    ]


def thinking_block(index: int, signature: str, *pieces: str) -> list[dict]:
    return [
        block_start(index, {"type": "thinking", "thinking": "", "signature": ""}),
        *(block_delta(index, {"type": "thinking_delta", "thinking": p}) for p in pieces),
        block_delta(index, {"type": "signature_delta", "signature": signature}),
        block_stop(index),
    ]


def redacted_block(index: int, data: str) -> list[dict]:
    return [block_start(index, {"type": "redacted_thinking", "data": data}), block_stop(index)]


def message_end(stop_reason: str = "end_turn", usage: dict | None = None) -> list[dict]:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return [
        {"type": "message_delta", "delta": delta, "usage": usage or {"output_tokens": 15}},
        {"type": "message_stop"},
    ]


PING = {"type": "ping"}


def stream(events: list[dict], pad: bool = True) -> bytes:
    """The events as one SSE body; with ``pad``, varying space padding as recent captures do."""
    return b"".join(event(e, (i * 7) % 13 if pad else 0) for i, e in enumerate(events))


def text_stream(*pieces: str, stop_reason: str = "end_turn") -> bytes:
    """A text answer with a ping after the block start, as Anthropic sends it."""
    start, *rest = text_block(0, *pieces)
    return stream([message_start(), start, PING, *rest, *message_end(stop_reason)])


def frames(raw: bytes) -> list:
    """Our OpenAI SSE output as a list: parsed JSON objects, and "[DONE]" as a string."""
    parser = SSEParser()
    events = parser.feed(raw) + parser.finish()
    return [e.data if e.data == "[DONE]" else json.loads(e.data) for e in events]


def deltas(parsed: list) -> list[dict]:
    return [f["choices"][0]["delta"] for f in parsed if isinstance(f, dict) and f.get("choices")]


def accumulate(parsed: list) -> dict:
    """What an OpenAI client builds from the chunks: content, reasoning, tool calls, finish."""
    content, reasoning, details, calls, finish = [], [], [], {}, None
    for frame in parsed:
        if not isinstance(frame, dict) or not frame.get("choices"):
            continue
        choice = frame["choices"][0]
        delta = choice["delta"]
        content.append(delta.get("content") or "")
        reasoning.append(delta.get("reasoning_content") or "")
        details += delta.get("reasoning_details") or []
        for call in delta.get("tool_calls") or []:
            entry = calls.setdefault(call["index"], {"id": None, "name": None, "arguments": ""})
            entry["id"] = call.get("id") or entry["id"]
            function = call.get("function") or {}
            entry["name"] = function.get("name") or entry["name"]
            entry["arguments"] += function.get("arguments") or ""
        finish = choice["finish_reason"] or finish
    return {
        "content": "".join(content),
        "reasoning": "".join(reasoning),
        "details": details,
        "tool_calls": [calls[i] for i in sorted(calls)],
        "finish_reason": finish,
    }
