"""The recorded Anthropic and Gemini captures (../shared/fixtures) as upstreams of
/v1/responses, cut at random places: every event and answer parses with the SDK's models, and
what the Responses client gets is what the same capture gives on /v1/chat/completions (text,
tool calls, reasoning, usage). The OpenAI Responses captures pass through byte for byte."""

import json
import re

import pytest
from openai.types.chat import ChatCompletion

from edgerelay.core.responses_api.items import decode_details
from tests.core.gateway_helpers import call
from tests.responses.helpers import JSON, SSE, gateway, post, streamed
from tests.support import responses_oracle as oracle
from tests.support import shared_fixtures
from tests.support.fake_fetch import FakeResponse
from tests.support.splits import random_splits

pytestmark = pytest.mark.skipif(
    not shared_fixtures.available(), reason=shared_fixtures.MISSING_REASON
)
MODEL = {"anthropic": "anthropic/claude-sonnet-4-5", "gemini": "gemini/gemini-2.5-flash"}
STREAMS = [
    *shared_fixtures.names("anthropic", "stream-"),
    *[n for n in shared_fixtures.names("gemini", "stream-") if n.endswith(".sse")],
]
ANSWERS = [
    *shared_fixtures.names("anthropic", "nonstream-"),
    *shared_fixtures.names("gemini", "nonstream-"),
]


def replay(name, seed=None):
    body = shared_fixtures.body(name)
    chunks = random_splits(body, seed) if seed is not None else [body]
    headers = SSE if name.endswith(".sse") else JSON
    return lambda request: FakeResponse(200, headers, chunks)


def chat_view(name) -> dict:
    """What the same capture gives on /v1/chat/completions (the SDK's accumulated view)."""
    provider = name.split("/")[0]
    gw, _ = gateway(replay(name))
    body = {"model": MODEL[provider], "messages": [{"role": "user", "content": "x"}]}
    if name.endswith(".sse"):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    response, chunks = call(gw, "POST", "/v1/chat/completions", body)
    view = {"text": "", "calls": {}, "details": [], "reasoning": "", "usage": None}
    if chunks is None:
        message = ChatCompletion.model_validate_json(response.body).choices[0].message
        extra = message.model_extra or {}
        view["text"] = message.content or ""
        view["calls"] = {
            c.id: (c.function.name, c.function.arguments) for c in message.tool_calls or ()
        }
        view["details"] = extra.get("reasoning_details", [])
        view["reasoning"] = extra.get("reasoning_content", "")
        view["usage"] = json.loads(response.body)["usage"]["total_tokens"]
        return view
    ids = {}
    for line in b"".join(chunks).split(b"\n\n"):
        if not line.startswith(b"data: {"):
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            view["usage"] = chunk["usage"]["total_tokens"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            view["text"] += delta.get("content") or ""
            view["reasoning"] += delta.get("reasoning_content") or ""
            view["details"] += delta.get("reasoning_details") or []
            for tc in delta.get("tool_calls") or ():
                if tc.get("id"):
                    ids[tc["index"]] = tc["id"]
                    view["calls"][tc["id"]] = (tc["function"]["name"], "")
                name_, args = view["calls"][ids[tc["index"]]]
                view["calls"][ids[tc["index"]]] = (name_, args + tc["function"]["arguments"])
    return view


def same(view: dict, expected: dict) -> None:
    """Equal, except for the counters in ids the gateway made up (Gemini's call ids) and the
    per-answer index of reasoning details (a stream gathers them per reasoning item)."""

    def normal(v: dict) -> str:
        v = {**v, "details": [{k: x for k, x in d.items() if k != "index"} for d in v["details"]]}
        v["calls"] = list(v["calls"].items())
        return re.sub(r"call_id\d+", "call_N", json.dumps(v, sort_keys=True))

    assert normal(view) == normal(expected)


def responses_view(resp) -> dict:
    view = {"text": oracle.text_of(resp), "calls": {}, "details": [], "reasoning": ""}
    for item in resp.output:
        if item.type == "function_call":
            view["calls"][item.call_id] = (item.name, item.arguments)
        elif item.type == "reasoning":
            view["details"] += decode_details(item.encrypted_content)
            view["reasoning"] += "".join(s.text for s in item.summary)
    view["usage"] = resp.usage.total_tokens
    return view


@pytest.mark.parametrize("name", STREAMS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recorded_streams_in_random_splits(name, seed):
    gw, _ = gateway(replay(name, seed))
    events, _ = streamed(gw, {"model": MODEL[name.split("/")[0]], "input": "x"})
    final = events[-1].response
    assert events[-1].type == "response.completed", final.error
    view = responses_view(final)
    same(view, chat_view(name))
    assert view["text"] or view["calls"]


@pytest.mark.parametrize("name", STREAMS)
def test_recorded_streams_give_the_same_events_whatever_the_splits(name):
    outputs = set()
    for seed in (None, 11, 12):
        gw, _ = gateway(replay(name, seed))
        _, raw = streamed(gw, {"model": MODEL[name.split("/")[0]], "input": "x"})
        outputs.add(raw)
    assert len(outputs) == 1


@pytest.mark.parametrize("name", ANSWERS)
def test_recorded_json_answers(name):
    gw, _ = gateway(replay(name))
    response, _ = post(gw, {"model": MODEL[name.split("/")[0]], "input": "x"})
    assert response.status == 200, response.body
    resp = oracle.response(response.body)
    same(responses_view(resp), chat_view(name))


OPENAI_RESPONSES = shared_fixtures.names("openai-responses")


@pytest.mark.parametrize(
    "name", [n for n in OPENAI_RESPONSES if not n.startswith("openai-responses/error")]
)
def test_openai_responses_captures_pass_through_byte_for_byte(name):
    body = shared_fixtures.body(name)
    chunks = random_splits(body, 5)
    headers = SSE if name.endswith(".sse") else JSON
    gw, fetch = gateway(lambda r: FakeResponse(200, headers, chunks))
    stream = name.endswith(".sse")
    _, out = post(gw, {"model": "gpt-4o", "input": "x", "stream": stream})
    # Byte for byte (the 2025 captures predate fields this SDK's models now require, such as
    # usage.input_tokens_details.cache_write_tokens, so they are not re-validated here).
    assert b"".join(out) == body
    assert fetch.requests[0].url.endswith("/v1/responses")


def test_openai_responses_error_capture_keeps_status_and_param():
    name = "openai-responses/error-400-1.json"
    body = shared_fixtures.body(name)
    gw, _ = gateway(lambda r: FakeResponse(400, JSON, [body]))
    response, _ = post(gw, {"model": "gpt-4o", "input": "x"})
    assert response.status == 400
    error = json.loads(response.body)["error"]
    assert error["param"] == "model" and error["code"] == "model_not_found"
