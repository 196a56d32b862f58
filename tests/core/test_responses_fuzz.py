"""Fuzzing /v1/responses: wrong-typed and odd request bodies (never a 500; errors in OpenAI's
shape, never a key), answers that are a ``response`` and streams that end in exactly one
terminal event, and garbage chat chunks through the event converter (never raises, always a
terminal event). Standard library, pytest and hypothesis only: this file also runs in Pyodide."""

from __future__ import annotations

import json
import logging

from hypothesis import given
from hypothesis import strategies as st

from edgerelay.core.errors import GatewayError
from edgerelay.core.responses_api.events import ResponsesStream
from edgerelay.core.sse import SSEParser
from tests.core.gateway_helpers import call, make_gateway
from tests.core.test_fuzz_requests import (
    ENV,
    FUZZ,
    T,
    anything,
    check_openai_error,
    fields,
    strict_json,
    text,
    upstream,
)

MODELS = ["mock/echo", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.5-flash", "gpt-4.1"]
TERMINAL = ("response.completed", "response.incomplete", "response.failed")
part = st.one_of(
    fields({"type": T("input_text")}, {"text": text}),
    fields({"type": T("output_text")}, {"text": text}),
    fields({"type": T("input_image")}, image_url=st.sampled_from(["https://x/y.png", "data:,"])),
    fields({"type": T("input_file")}, file_data=T("data:application/pdf;base64,AA==")),
    fields({"type": st.sampled_from(["refusal", "input_audio", "bogus"])}),
)
content = text | st.lists(part, max_size=3)
item = st.one_of(
    fields(
        {"role": st.sampled_from(["user", "system", "developer", "assistant"])},
        {"content": content},
    ),
    fields({"type": T("message"), "role": T("assistant")}, {"content": content}),
    fields({"type": T("function_call")}, {"call_id": text, "name": text, "arguments": text}),
    fields({"type": T("function_call_output")}, {"call_id": text, "output": content}),
    fields({"type": T("reasoning")}, {"summary": T([]), "encrypted_content": text}),
    fields({"type": T("item_reference")}, {"id": text}),
    fields({"type": st.sampled_from(["web_search_call", "bogus"])}),
)
tool = st.one_of(
    fields(
        {"type": T("function"), "name": st.sampled_from(["f", "g"])},
        parameters=T({"type": "object", "properties": {}}),
        strict=st.booleans(),
    ),
    fields({"type": st.sampled_from(["web_search", "file_search", "mcp"])}),
)
request = fields(
    {"model": st.sampled_from(MODELS), "input": text | st.lists(item, min_size=1, max_size=4)},
    stream=st.booleans(),
    store=st.booleans(),
    instructions=text,
    tools=st.lists(tool, max_size=2),
    tool_choice=st.sampled_from(["auto", "none", "required"])
    | fields({"type": T("function")}, {"name": T("f")}),
    parallel_tool_calls=st.booleans(),
    max_output_tokens=st.integers(0, 50_000),
    temperature=st.floats(0, 2, allow_nan=False),
    top_p=st.floats(0, 1, allow_nan=False),
    reasoning=fields(
        effort=st.sampled_from(["low", "high", "none"]),
        summary=st.sampled_from(["auto", "detailed"]),
    ),
    text=fields(format=fields({"type": st.sampled_from(["text", "json_object", "json_schema"])})),
    previous_response_id=text,
    metadata=T({}),
    user=text,
)


def check_events(raw: bytes) -> None:
    parser = SSEParser()
    frames = [*parser.feed(raw), *parser.finish()]
    kinds = []
    for n, frame in enumerate(frames):
        data = strict_json(frame.data)
        assert data["type"] == frame.event and data["sequence_number"] == n
        kinds.append(data["type"])
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] in TERMINAL and sum(k in TERMINAL for k in kinds) == 1


def assert_sane(body) -> None:
    gateway, _ = make_gateway(upstream, env=ENV)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    logging.disable(logging.CRITICAL)
    try:
        response, chunks = call(gateway, path="/v1/responses", body=raw)
    finally:
        logging.disable(logging.NOTSET)
    assert response.status != 500, response.body
    if response.status >= 400:
        check_openai_error(response.body)
    elif chunks is None:
        assert strict_json(response.body)["object"] in ("response", "chat.completion")
    elif b"event: response.created" in b"".join(chunks[:1]):
        check_events(b"".join(chunks))


@FUZZ
@given(request)
def test_fuzzed_requests_never_get_a_500(body):
    assert_sane(body)


@FUZZ
@given(st.dictionaries(st.sampled_from(["model", "input", "stream", "tools", "store"]), anything))
def test_fuzzed_top_level_fields_never_get_a_500(body):
    assert_sane(body)


chunk_data = st.one_of(
    anything.map(json.dumps),
    st.sampled_from(["[DONE]", "{", '{"error": 5}', '{"choices": [{"delta": 7}]}']),
    fields(
        {"object": T("chat.completion.chunk")},
        choices=st.lists(
            fields(
                {"index": T(0)},
                delta=fields(
                    content=text,
                    reasoning_content=text,
                    reasoning_details=anything,
                    tool_calls=st.lists(
                        fields(
                            index=st.integers(0, 2),
                            id=text,
                            function=fields(name=text, arguments=text),
                        ),
                        max_size=2,
                    ),
                ),
                finish_reason=st.sampled_from([None, "stop", "length", "tool_calls"]),
            ),
            max_size=2,
        ),
        usage=anything,
    ).map(json.dumps),
)


@FUZZ
@given(st.lists(chunk_data, max_size=8), st.booleans())
def test_garbage_chat_chunks_never_raise_and_always_end(datas, broken):
    converter = ResponsesStream({"id": "resp_1", "status": "in_progress"}, lambda: "x")
    out = converter.start()
    for data in datas:
        out += converter.feed(b"data: " + data.encode("utf-8", "surrogatepass") + b"\n\n")
    out += converter.fail(GatewayError(502, "cut")) if broken else converter.finish()
    check_events(out)
