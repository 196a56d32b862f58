"""End to end on /v1/responses: the official openai SDK (responses.create, responses.stream
with its accumulated final response, a function-call loop) against the real gateway on uvicorn,
with loopback fake Anthropic and Gemini upstreams and with mock/echo; streams proven lock-step."""

import json

import httpx
import openai
import pytest

from tests.support import anthropic_wire as wire
from tests.support import responses_oracle as oracle
from tests.support.loopback import WAIT, Reply, sse_frames
from tests.support.splits import random_splits

SSE = {"content-type": "text/event-stream; charset=utf-8"}
JSON = {"content-type": "application/json"}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
MODELS = {"anthropic": "anthropic/claude-sonnet-4-5", "gemini": "gemini/gemini-2.5-flash"}


def anthropic_reply(seen) -> Reply:
    """Thinking + a tool call at first; text once the tool's result is in the conversation."""
    body = json.loads(seen.body)
    answered = any(
        isinstance(m["content"], list) and any(b["type"] == "tool_result" for b in m["content"])
        for m in body["messages"]
    )
    if answered:
        blocks = [{"type": "text", "text": "It is 12 °C in Paris."}]
        events = [
            wire.message_start(),
            *wire.text_block(0, "It is 12 °C ", "in Paris."),
            *wire.message_end("end_turn", {"output_tokens": 9}),
        ]
        stop = "end_turn"
    else:
        blocks = [
            {"type": "thinking", "thinking": "Use the tool.", "signature": "sig-E2E"},
            {
                "type": "tool_use",
                "id": "toolu_E2E",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ]
        events = [
            wire.message_start(),
            *wire.thinking_block(0, "sig-E2E", "Use the tool."),
            *wire.tool_block(1, "toolu_E2E", "get_weather", '{"city": ', '"Paris"}'),
            *wire.message_end("tool_use", {"output_tokens": 30}),
        ]
        stop = "tool_use"
    if body.get("stream"):
        return Reply(200, SSE, random_splits(wire.stream(events), 7))
    message = {
        "id": "msg_E2E",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 9},
    }
    return Reply(200, JSON, [json.dumps(message).encode()])


def gemini_reply(seen) -> Reply:
    body = json.loads(seen.body)
    answered = any("functionResponse" in p for c in body["contents"] for p in c["parts"])
    if answered:
        parts = [{"text": "It is 12 °C in Paris."}]
    else:
        call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
        parts = [{**call, "thoughtSignature": "GSIG-E2E"}]
    candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
    usage = {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18}
    answer = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.5-flash"}
    if "streamGenerateContent" in seen.path:
        frame = b"data: " + json.dumps(answer).encode() + b"\r\n\r\n"
        return Reply(200, {"content-type": "text/event-stream"}, random_splits(frame, 5))
    return Reply(200, JSON, [json.dumps(answer).encode()])


@pytest.fixture(params=["anthropic", "gemini"])
def provider(request, upstream, gateway_for):
    upstream.handler = anthropic_reply if request.param == "anthropic" else gemini_reply
    env = {
        "ANTHROPIC_BASE_URL": upstream.url,
        "ANTHROPIC_API_KEY": "sk-ant-up",
        "GEMINI_BASE_URL": upstream.url,
        "GEMINI_API_KEY": "g-up",
    }
    gateway = gateway_for(env)
    client = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key="client", max_retries=0, timeout=WAIT
    )
    return request.param, client, upstream


def run_tool(call) -> str:
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    return "12 °C"


@pytest.mark.parametrize("stream", [False, True])
def test_function_call_loop_with_previous_response_id(provider, stream):
    name, client, upstream = provider
    model = MODELS[name]
    if stream:
        with client.responses.stream(
            model=model, input="Weather in Paris?", tools=[WEATHER]
        ) as events:
            kinds = [event.type for event in events]
            first = events.get_final_response()
        assert "response.function_call_arguments.done" in kinds
    else:
        first = client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and first.status == "completed"
    reasoning = [item for item in first.output if item.type == "reasoning"]
    assert reasoning and reasoning[0].encrypted_content  # signed thinking / thought signature
    outputs = [
        {"type": "function_call_output", "call_id": c.call_id, "output": run_tool(c)} for c in calls
    ]
    second = client.responses.create(
        model=model, previous_response_id=first.id, input=outputs, tools=[WEATHER]
    )
    assert second.output_text == "It is 12 °C in Paris."
    assert second.previous_response_id == first.id
    resent = json.loads(upstream.seen[-1].body)
    if name == "anthropic":
        turn = resent["messages"][1]["content"]
        assert turn[0] == {"type": "thinking", "thinking": "Use the tool.", "signature": "sig-E2E"}
        assert turn[1]["type"] == "tool_use" and turn[1]["id"] == "toolu_E2E"
    else:
        part = resent["contents"][1]["parts"][0]
        assert part["thoughtSignature"] == "GSIG-E2E" and part["functionCall"]["name"]


def test_function_call_loop_with_the_items_sent_back_and_store_false(provider):
    name, client, _ = provider
    model = MODELS[name]
    conversation = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.responses.create(model=model, input=conversation, tools=[WEATHER], store=False)
    conversation += [item.model_dump(exclude_none=True) for item in first.output]
    for call in (item for item in first.output if item.type == "function_call"):
        conversation.append(
            {"type": "function_call_output", "call_id": call.call_id, "output": run_tool(call)}
        )
    with client.responses.stream(
        model=model, input=conversation, tools=[WEATHER], store=False
    ) as events:
        deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
        final = events.get_final_response()
    assert "".join(deltas) == final.output_text == "It is 12 °C in Paris."
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=model, input="again", previous_response_id=first.id)
    assert caught.value.body["param"] == "previous_response_id"


def test_mock_echo_with_the_sdk(gateway_for):
    gateway = gateway_for({})
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0, timeout=WAIT)
    assert client.responses.create(model="mock/echo", input="Hi there").output_text == "Hi there"
    with client.responses.stream(model="mock/echo", input="Hi again") as events:
        assert events.get_final_response().output_text == "Hi again"


def test_bad_requests_raise_the_sdks_usual_error(gateway_for):
    gateway = gateway_for({"ANTHROPIC_API_KEY": "sk"})
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0, timeout=WAIT)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(
            model=MODELS["anthropic"], input="Hi", tools=[{"type": "web_search"}]
        )
    assert caught.value.body["param"] == "tools[0]"


def test_events_are_relayed_in_lockstep(upstream, gateway_for):
    # Upstream chunk k+1 (text piece k+1) leaves only after the client has read the
    # output_text.delta event of piece k: a gateway that buffered anything would deadlock.
    pieces = [f"w{k} " for k in range(6)]
    events = [wire.event(e) for e in wire.text_block(0, *pieces)]
    head = wire.event(wire.message_start()) + events[0] + events[1]
    tail = events[-1] + b"".join(wire.event(e) for e in wire.message_end())
    frames = [head, *events[2:-1], tail]
    upstream.handler = lambda seen: Reply(200, SSE, frames, lockstep=True)
    gateway = gateway_for({"ANTHROPIC_BASE_URL": upstream.url, "ANTHROPIC_API_KEY": "k"})
    body = {"model": MODELS["anthropic"], "input": "x", "stream": True}
    got = b""
    with httpx.stream("POST", gateway.url + "/v1/responses", json=body, timeout=WAIT) as response:
        for frame in sse_frames(response):
            got += frame + b"\n\n"
            if frame.startswith(b"event: response.output_text.delta"):
                upstream.release()
    typed = oracle.events(got)
    assert typed[-1].type == "response.completed"
    assert [e.delta for e in typed if e.type == "response.output_text.delta"] == pieces
