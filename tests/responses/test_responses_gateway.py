"""/v1/responses over Anthropic, Gemini, mock/echo and OpenAI-compatible upstreams, through
Gateway.handle with fake upstreams; every event and response parsed with the SDK's models."""

import asyncio
import json

import pytest

from edgerelay.core.http import Request
from edgerelay.core.responses_api.items import decode_details
from tests.core.gateway_helpers import NOW, call, error_of
from tests.responses.helpers import (
    JSON,
    SSE,
    answered,
    anthropic_message,
    anthropic_upstream,
    gateway,
    gemini_frame,
    post,
    sent_body,
    streamed,
)
from tests.support import anthropic_wire as wire
from tests.support import responses_oracle as oracle
from tests.support.fake_fetch import FakeResponse

CLAUDE = "anthropic/claude-sonnet-4-5"
GEMINI = "gemini/gemini-2.5-flash"
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}


# -- mock/echo ------------------------------------------------------------------------------


def test_mock_echo_answers_json():
    gw, _ = gateway()
    resp = answered(gw, {"model": "mock/echo", "input": "Hello from the edge"})
    assert resp.status == "completed" and resp.object == "response"
    assert oracle.text_of(resp) == "Hello from the edge"
    assert resp.created_at == NOW and resp.model == "mock/echo"
    assert resp.usage.input_tokens == 4 and resp.usage.output_tokens == 4
    assert resp.usage.total_tokens == 8


def test_mock_echo_streams_the_exact_event_sequence():
    gw, _ = gateway()
    events, _ = streamed(gw, {"model": "mock/echo", "input": "one two"})
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.delta for e in events if e.type.endswith("text.delta")] == ["one", " two"]
    final = events[-1].response
    assert oracle.text_of(final) == "one two" and final.usage.output_tokens == 2
    assert events[0].response.status == "in_progress" and events[0].response.output == []


def test_mock_echo_max_output_tokens_is_incomplete():
    gw, _ = gateway()
    events, _ = streamed(gw, {"model": "mock/echo", "input": "a b c d", "max_output_tokens": 2})
    final = events[-1]
    assert final.type == "response.incomplete"
    assert final.response.incomplete_details.reason == "max_output_tokens"
    assert final.response.output[0].status == "incomplete"
    resp = answered(gw, {"model": "mock/echo", "input": "a b c d", "max_output_tokens": 2})
    assert resp.status == "incomplete" and oracle.text_of(resp) == "a b"


# -- Anthropic ------------------------------------------------------------------------------

THINKING_TOOL = [
    wire.message_start({"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 1}),
    *wire.thinking_block(0, "sig-A==", "Let me ", "check."),
    *wire.text_block(1, "Checking ", "the weather…"),
    *wire.tool_block(2, "toolu_01A", "get_weather", '{"city"', ': "Paris"}'),
    *wire.message_end("tool_use", {"output_tokens": 120}),
]


def test_anthropic_stream_thinking_text_and_tool_call():
    gw, fetch = gateway(anthropic_upstream(THINKING_TOOL))
    body = {"model": CLAUDE, "input": "Weather in Paris?", "tools": [WEATHER]}
    events, _ = streamed(gw, {**body, "reasoning": {"effort": "low", "summary": "auto"}})
    final = events[-1].response
    kinds = [item.type for item in final.output]
    assert kinds == ["reasoning", "message", "function_call"]
    reasoning, message, call = final.output
    assert reasoning.summary[0].text == "Let me check."
    assert decode_details(reasoning.encrypted_content) == [
        {
            "type": "reasoning.text",
            "text": "Let me check.",
            "signature": "sig-A==",
            "format": "anthropic-claude-v1",
            "model": "claude-sonnet-4-5",  # signed thinking goes back to its own model only
            "index": 0,
        }
    ]
    assert message.content[0].text == "Checking the weather…"
    assert (call.call_id, call.name, call.arguments) == (
        "toolu_01A",
        "get_weather",
        '{"city": "Paris"}',
    )
    assert final.usage.input_tokens == 100
    assert final.usage.input_tokens_details.cached_tokens == 90
    sent = sent_body(fetch)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert sent["tools"][0]["name"] == "get_weather" and sent["stream"] is True
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert deltas == ['{"city"', ': "Paris"}']


def test_anthropic_json_answer():
    answer = anthropic_message(
        [
            {"type": "thinking", "thinking": "Hmm.", "signature": "sig-J"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
        "tool_use",
    )
    gw, _ = gateway(anthropic_upstream(answer=answer))
    resp = answered(gw, {"model": CLAUDE, "input": "Oslo?", "tools": [WEATHER]})
    assert [i.type for i in resp.output] == ["reasoning", "message", "function_call"]
    assert resp.output[2].arguments == '{"city":"Oslo"}' and resp.output[2].call_id == "toolu_9"
    assert resp.model == "claude-sonnet-4-5-20250929"


def test_reasoning_items_sent_back_restore_anthropic_signed_thinking():
    gw, fetch = gateway(anthropic_upstream(THINKING_TOOL))
    first, _ = streamed(gw, {"model": CLAUDE, "input": "Weather?", "tools": [WEATHER]})
    output = [item.model_dump(exclude_none=True) for item in first[-1].response.output]
    second = {
        "model": CLAUDE,
        "store": False,
        "tools": [WEATHER],
        "input": [
            {"role": "user", "content": "Weather?"},
            *output,
            {"type": "function_call_output", "call_id": "toolu_01A", "output": "12 °C"},
        ],
    }
    streamed(gw, second)
    messages = sent_body(fetch)["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Let me check.", "signature": "sig-A=="},
            {"type": "text", "text": "Checking the weather…"},
            {
                "type": "tool_use",
                "id": "toolu_01A",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ],
    }
    assert messages[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "12 °C"}],
    }


def test_anthropic_stream_error_after_first_byte_is_response_failed():
    events = [wire.message_start(), *wire.text_block(0, "Hel")]
    raw = wire.stream(events) + wire.event(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    gw, _ = gateway(anthropic_upstream(chunks=[raw]))
    typed, _ = streamed(gw, {"model": CLAUDE, "input": "Hi"})
    assert [e.type for e in typed[-2:]] == ["error", "response.failed"]
    assert typed[-1].response.status == "failed"
    assert typed[-1].response.error.message == "Overloaded"
    assert typed[-1].response.error.code == "server_error"


def test_upstream_cut_mid_stream_is_response_failed():
    def handler(request):
        chunks = [wire.stream([wire.message_start(), *wire.text_block(0, "Hel")])]
        return FakeResponse(200, SSE, chunks, error_after=1)

    gw, _ = gateway(handler)
    typed, _ = streamed(gw, {"model": CLAUDE, "input": "Hi"})
    assert typed[-1].type == "response.failed"
    assert "broke off" in typed[-1].response.error.message


@pytest.mark.parametrize("cache", ["off", "on"])
def test_a_client_gone_before_the_first_byte_closes_the_upstream(cache):
    upstreams = []

    def handler(request):
        chunks = [wire.stream([wire.message_start(), *wire.text_block(0, "Hel")])]
        upstreams.append(FakeResponse(200, SSE, chunks))
        return upstreams[-1]

    gw, _ = gateway(handler, EDGERELAY_CACHE=cache)
    body = json.dumps({"model": CLAUDE, "input": "Hi", "stream": True}).encode()

    async def leave_at_once():
        response = await gw.handle(Request("POST", "/v1/responses", "", {}, body))
        assert response.status == 200 and response.stream is not None
        await response.aclose()  # as an adapter does when the client leaves before any write
        await asyncio.sleep(0)  # a cache flight's task gets its turn

    asyncio.run(leave_at_once())
    assert [upstream.closed for upstream in upstreams] == [True]


def test_anthropic_refuses_json_schema_naming_text_format():
    gw, fetch = gateway()
    fmt = {"type": "json_schema", "name": "x", "schema": {"type": "object"}}
    response, _ = post(gw, {"model": CLAUDE, "input": "Hi", "text": {"format": fmt}})
    assert response.status == 400 and error_of(response)["param"] == "text.format"
    assert "`text.format`" in error_of(response)["message"] and not fetch.requests


def test_anthropic_part_error_is_named_by_input_path():
    gw, _ = gateway()
    part = {"type": "input_file", "file_data": "data:application/pdf;base64,AAAA"}
    body = {
        "model": CLAUDE,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "Read"}, part]}],
    }
    response, _ = post(gw, body)
    assert response.status == 400
    assert error_of(response)["param"] == "input[0].content[1]"


def test_upstream_http_error_keeps_status_and_message():
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "Slow down"}}

    def handler(request):
        return FakeResponse(429, {**JSON, "retry-after": "7"}, [json.dumps(body).encode()])

    gw, _ = gateway(handler)
    response, _ = post(gw, {"model": CLAUDE, "input": "Hi", "stream": True})
    assert response.status == 429 and error_of(response)["message"] == "Slow down"
    assert ("retry-after", "7") in response.headers


# -- Gemini ---------------------------------------------------------------------------------


def gemini_handler(frames):
    def handler(request):
        return FakeResponse(200, SSE, frames)

    return handler


def test_gemini_stream_text_and_signed_call_round_trip():
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
    frames = [
        gemini_frame([{"text": "Thinking it over", "thought": True}]),
        gemini_frame([{"text": "Let me check."}]),
        gemini_frame(
            [{**call, "thoughtSignature": "GSIG=="}],
            "STOP",
            {"promptTokenCount": 7, "candidatesTokenCount": 5, "thoughtsTokenCount": 3},
        ),
    ]
    gw, fetch = gateway(gemini_handler(frames))
    body = {"model": GEMINI, "input": "Rome?", "tools": [WEATHER]}
    events, _ = streamed(gw, {**body, "reasoning": {"effort": "low"}})
    final = events[-1].response
    assert [i.type for i in final.output] == ["reasoning", "message", "reasoning", "function_call"]
    assert final.output[0].summary[0].text == "Thinking it over"
    call_item = final.output[3]
    assert call_item.name == "get_weather" and json.loads(call_item.arguments) == {"city": "Rome"}
    details = decode_details(final.output[2].encrypted_content)
    assert details[0]["data"] == "GSIG==" and details[0]["id"] == call_item.call_id
    assert final.usage.output_tokens_details.reasoning_tokens == 3
    # The next turn, with the output items and the tool's output, restores the signature.
    second = {
        "model": GEMINI,
        "tools": [WEATHER],
        "input": [
            {"role": "user", "content": "Rome?"},
            *[item.model_dump(exclude_none=True) for item in final.output],
            {"type": "function_call_output", "call_id": call_item.call_id, "output": "20 °C"},
        ],
    }
    fetch.handler = gemini_handler([gemini_frame([{"text": "Warm."}], "STOP")])
    streamed(gw, second)
    contents = sent_body(fetch)["contents"]
    model_turn = contents[1]
    assert model_turn["role"] == "model"
    assert model_turn["parts"][0] == {"text": "Let me check."}
    assert model_turn["parts"][1]["thoughtSignature"] == "GSIG=="
    assert model_turn["parts"][1]["functionCall"]["name"] == "get_weather"
    assert contents[2]["parts"][0]["functionResponse"]["name"] == "get_weather"


def test_gemini_takes_json_schema():
    gw, fetch = gateway(gemini_handler([gemini_frame([{"text": "{}"}], "STOP")]))
    fmt = {"type": "json_schema", "name": "x", "schema": {"type": "object"}}
    streamed(gw, {"model": GEMINI, "input": "Hi", "text": {"format": fmt}})
    config = sent_body(fetch)["generationConfig"]
    assert config["responseMimeType"] == "application/json"


# -- OpenAI-compatible ----------------------------------------------------------------------


def test_openai_passes_through_byte_for_byte_with_only_the_model_renamed():
    upstream_bytes = [
        b'event: response.created\ndata: {"type":"response.created","sequence_number":0}\n\n',
        b'event: response.completed\ndata: {"type":"response.comp',
        b'leted","sequence_number":1}\n\n',
    ]

    def handler(request):
        return FakeResponse(200, SSE, upstream_bytes)

    gw, fetch = gateway(handler)
    body = {"model": "openai/gpt-4.1", "input": "Hi", "stream": True, "store": False}
    _, chunks = post(gw, body)
    # The stream observer cuts on event boundaries only: the bytes are the upstream's.
    assert b"".join(chunks) == b"".join(upstream_bytes)
    sent = fetch.requests[0]
    assert sent.url == "https://api.openai.com/v1/responses"
    assert json.loads(sent.body) == {**body, "model": "gpt-4.1"}
    assert sent.headers["authorization"] == "Bearer sk-oai"


def test_an_openai_stream_cut_mid_event_ends_in_response_failed_after_the_last_event():
    created = b'event: response.created\ndata: {"type":"response.created","sequence_number":0,'
    created += b'"response":{"id":"resp_1","object":"response","output":[]}}\n\n'
    upstream_bytes = [created, b'event: response.output_text.delta\ndata: {"ty']
    gw, _ = gateway(lambda r: FakeResponse(200, SSE, upstream_bytes))
    _, chunks = post(gw, {"model": "openai/gpt-4.1", "input": "Hi", "stream": True})
    raw = b"".join(chunks)
    assert raw.startswith(created) and b"output_text.delta" not in raw  # the half event dropped
    failed = json.loads(raw[len(created) :].split(b"data: ", 1)[1])
    assert failed["type"] == "response.failed" and failed["sequence_number"] == 1
    assert failed["response"]["id"] == "resp_1" and failed["response"]["status"] == "failed"
    assert "ended before the answer was complete" in failed["response"]["error"]["message"]


def test_openai_passthrough_sends_the_raw_body_when_the_model_is_unchanged():
    gw, fetch = gateway(lambda r: FakeResponse(200, JSON, [b"{}"]))
    raw = b'{"model": "gpt-4.1",   "input": "Hi"}'
    _, chunks = post(gw, raw)
    assert fetch.requests[0].body == raw and b"".join(chunks) == b"{}"


TRANSLATE = """
[providers.local]
base_url = "http://127.0.0.1:9/v1"
responses = "translate"
"""


def test_translate_mode_speaks_chat_completions_upstream():
    chunks = [
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
        b'[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\n\n',
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
        b'[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n',
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
        b'[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}\n\n',
        b"data: [DONE]\n\n",
    ]
    gw, fetch = gateway(lambda r: FakeResponse(200, SSE, chunks), EDGERELAY_CONFIG=TRANSLATE)
    events, _ = streamed(gw, {"model": "local/m", "input": "Yo", "instructions": "Be brief"})
    assert fetch.requests[0].url == "http://127.0.0.1:9/v1/chat/completions"
    assert sent_body(fetch) == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": "Yo"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert oracle.text_of(events[-1].response) == "Hi"
    assert events[-1].response.usage.total_tokens == 4


# -- stored responses -----------------------------------------------------------------------


def test_previous_response_id_continues_across_providers():
    answer = anthropic_message([{"type": "text", "text": "I am Claude."}])
    gw, fetch = gateway(anthropic_upstream(answer=answer))
    first = answered(gw, {"model": CLAUDE, "input": "Who are you?", "instructions": "Be nice"})
    fetch.handler = gemini_handler([gemini_frame([{"text": "And I am Gemini."}], "STOP")])
    streamed(gw, {"model": GEMINI, "input": "And you?", "previous_response_id": first.id})
    contents = sent_body(fetch)["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"] == [{"text": "I am Claude."}]
    assert "systemInstruction" not in sent_body(fetch)  # instructions are not carried over


def test_item_reference_resolves_a_stored_item():
    gw, fetch = gateway(anthropic_upstream(THINKING_TOOL))
    first, _ = streamed(gw, {"model": CLAUDE, "input": "Weather?", "tools": [WEATHER]})
    refs = [{"type": "item_reference", "id": item.id} for item in first[-1].response.output]
    second = {
        "model": CLAUDE,
        "tools": [WEATHER],
        "input": [
            {"role": "user", "content": "Weather?"},
            *refs,
            {"type": "function_call_output", "call_id": "toolu_01A", "output": "12 °C"},
        ],
    }
    streamed(gw, second)
    blocks = sent_body(fetch)["messages"][1]["content"]
    assert [b["type"] for b in blocks] == ["thinking", "text", "tool_use"]
    assert blocks[0]["signature"] == "sig-A=="


def test_unknown_ids_are_400s_naming_them():
    gw, fetch = gateway()
    response, _ = post(gw, {"model": CLAUDE, "input": "x", "previous_response_id": "resp_nope"})
    assert response.status == 400 and "resp_nope" in error_of(response)["message"]
    assert error_of(response)["param"] == "previous_response_id"
    ref = {"model": CLAUDE, "input": [{"type": "item_reference", "id": "msg_nope"}]}
    response, _ = post(gw, ref)
    assert response.status == 400 and error_of(response)["param"] == "input[0].id"
    assert "msg_nope" in error_of(response)["message"]
    assert not fetch.requests


def test_store_false_keeps_nothing():
    gw, _ = gateway()
    resp = answered(gw, {"model": "mock/echo", "input": "hi", "store": False})
    response, _ = post(gw, {"model": "mock/echo", "input": "x", "previous_response_id": resp.id})
    assert response.status == 400
    assert gw.response_store.size == 0


def test_stored_responses_are_per_client():
    gw, _ = gateway()
    mine = {"authorization": "Bearer alice"}
    resp = answered(gw, {"model": "mock/echo", "input": "hi"}, mine)
    again = {"model": "mock/echo", "input": "more", "previous_response_id": resp.id}
    assert post(gw, again, mine)[0].status == 200
    assert post(gw, again, {"authorization": "Bearer bob"})[0].status == 400


def test_streamed_response_is_stored_before_its_last_event():
    gw, _ = gateway()
    events, _ = streamed(gw, {"model": "mock/echo", "input": "hello there"})
    again = {"model": "mock/echo", "input": "more", "previous_response_id": events[-1].response.id}
    resp = answered(gw, again)
    assert oracle.text_of(resp) == "more"


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"tools": [WEATHER, {"type": "file_search", "vector_store_ids": []}]}, "tools[1]"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"background": True}, "background"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        ({"input": 5}, "input"),
        ({"input": []}, "input"),
        ({"stream": "yes"}, "stream"),
        ({"store": 1}, "store"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].image_url",
        ),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]},
            "input[0].arguments",
        ),
        ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
    ],
)
def test_requests_it_cannot_serve_are_400s_naming_the_field(body, param):
    gw, fetch = gateway()
    response, _ = post(gw, {"model": CLAUDE, "input": "Hi", **body})
    assert response.status == 400, response.body
    assert error_of(response)["param"] == param
    assert not fetch.requests


def test_route_is_post_only():
    gw, _ = gateway()
    response, _ = call(gw, "GET", "/v1/responses")
    assert response.status == 405 and ("allow", "POST") in response.headers
