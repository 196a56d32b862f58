"""Anthropic Messages stream events as the Worker tests' loopback upstream sends them."""

import json


def anthropic_event(kind, **fields):
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n"


MESSAGE_START = anthropic_event(
    "message_start",
    message={
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [],
        "usage": {"input_tokens": 3, "output_tokens": 0},
    },
)
