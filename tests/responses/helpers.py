"""Driving /v1/responses through Gateway.handle with fake upstreams (CPython: the oracle is
the openai SDK's typed models)."""

from __future__ import annotations

import json

from tests.core.gateway_helpers import call, make_gateway
from tests.support import anthropic_wire as wire
from tests.support import responses_oracle as oracle
from tests.support.fake_fetch import FakeResponse

SSE = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json"}
KEYS = {"ANTHROPIC_API_KEY": "sk-ant", "GEMINI_API_KEY": "g-key", "OPENAI_API_KEY": "sk-oai"}


def gateway(handler=None, **env):
    return make_gateway(handler, {**KEYS, **env})


def post(gw, body, headers=None):
    return call(gw, "POST", "/v1/responses", body, headers)


def streamed(gw, body, headers=None):
    """(typed events, raw bytes) of a streamed request."""
    response, chunks = post(gw, {**body, "stream": True}, headers)
    assert response.status == 200, response.body
    raw = b"".join(chunks)
    return oracle.events(raw), raw


def answered(gw, body, headers=None):
    response, _ = post(gw, body, headers)
    assert response.status == 200, response.body
    return oracle.response(response.body)


def anthropic_upstream(events=None, answer=None, chunks=None):
    """A handler answering streamed requests with Anthropic ``events`` (or raw ``chunks``) and
    the others with the JSON ``answer``."""

    def handler(request):
        if json.loads(request.body).get("stream"):
            body = chunks if chunks is not None else [wire.stream(events)]
            return FakeResponse(200, SSE, body)
        return FakeResponse(200, JSON, [json.dumps(answer).encode()])

    return handler


def anthropic_message(content, stop_reason="end_turn", usage=None) -> dict:
    return {
        "id": "msg_01JSON",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 20, "output_tokens": 8},
    }


def gemini_frame(parts, finish=None, usage=None) -> bytes:
    candidate = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash", "responseId": "r1"}
    if usage:
        body["usageMetadata"] = usage
    return b"data: " + json.dumps(body).encode() + b"\r\n\r\n"


def sent_body(fetch, k=-1) -> dict:
    return json.loads(fetch.requests[k].body)
