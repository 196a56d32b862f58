"""End to end: the official openai SDK against the real server on uvicorn, with a loopback fake
Gemini upstream speaking Gemini's wire format (CRLF-framed SSE without [DONE], indented JSON)."""

import json

import httpx
import openai
import pytest

from tests.support.loopback import WAIT, Reply, sse_frames

KEY = "gk-upstream-key"
CLIENT_KEY = "sk-client-key-never-forwarded"
SSE = {"Content-Type": "text/event-stream", "Content-Disposition": "attachment"}
JSON = {"Content-Type": "application/json; charset=UTF-8"}
MODEL = "gemini-2.5-flash"
USER = [{"role": "user", "content": "Hi"}]
SIGNATURE = "CiQBERk2OWRlc2lnbmF0dXJlLWJ5dGVz"


def sse(*frames: dict) -> list[bytes]:
    return [b"data: " + json.dumps(f, ensure_ascii=False).encode() + b"\r\n\r\n" for f in frames]


def frame(parts, finish=None, prompt=9, candidates=0, thoughts=None) -> dict:
    candidate = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": candidates}
    if thoughts is not None:
        usage["thoughtsTokenCount"] = thoughts
    usage["totalTokenCount"] = prompt + candidates + (thoughts or 0)
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "resp-abc",
    }


def whole(parts, finish="STOP", **usage) -> bytes:
    return json.dumps(frame(parts, finish, **usage), indent=2).encode() + b"\n"


def weather(city, **extra):
    return {"functionCall": {"name": "weather", "args": {"city": city}}, **extra}


@pytest.fixture
def gemini_gateway(upstream, gateway_for):
    """``gemini_gateway(http_client) -> GatewayServer`` routed to the fake Gemini."""
    return lambda http_client="aiohttp": gateway_for(
        {"GEMINI_BASE_URL": upstream.url, "GEMINI_API_KEY": KEY}, http_client
    )


@pytest.fixture
def client(gemini_gateway):
    def make(http_client="aiohttp"):
        gateway = gemini_gateway(http_client)
        return openai.OpenAI(
            base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=WAIT
        )

    return make


def assert_sent_safely(seen, stream):
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    assert seen.path == f"/v1beta/models/{MODEL}:{action}"
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert headers["x-goog-api-key"] == KEY
    assert "key=" not in seen.path and KEY not in seen.path
    assert "authorization" not in headers
    assert CLIENT_KEY.encode() not in seen.body and CLIENT_KEY not in json.dumps(headers)


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_stream_text_with_usage(upstream, client, http_client):
    frames = sse(
        frame([{"text": "Hello"}], candidates=1),
        frame([{"text": " from"}], candidates=2),
        frame([{"text": " Gemini."}], "STOP", prompt=8, candidates=4, thoughts=11),
    )
    upstream.handler = lambda seen: Reply(200, SSE, frames)
    chunks = list(
        client(http_client).chat.completions.create(
            model="gemini/" + MODEL,
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from Gemini."
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert {(c.id, c.model, c.object) for c in chunks} == {
        ("resp-abc", "gemini-2.5-flash-001", "chat.completion.chunk")
    }
    last = chunks[-1]
    assert last.choices == []
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (8, 15)
    assert last.usage.total_tokens == 23
    assert last.usage.completion_tokens_details.reasoning_tokens == 11
    assert all(c.usage is None for c in chunks[:-1])
    assert_sent_safely(upstream.seen[-1], stream=True)


def test_the_raw_stream_ends_with_our_done_although_gemini_sends_none(upstream, gemini_gateway):
    frames = sse(frame([{"text": "x"}], "STOP", candidates=1))
    upstream.handler = lambda seen: Reply(200, SSE, frames)
    url = gemini_gateway().url + "/v1/chat/completions"
    body = {"model": MODEL, "messages": USER, "stream": True}
    headers = {"authorization": "Bearer " + CLIENT_KEY}
    with httpx.stream("POST", url, json=body, headers=headers) as response:
        raw = b"".join(response.iter_raw())
    assert raw.endswith(b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    assert b"\r" not in raw
    assert_sent_safely(upstream.seen[-1], stream=True)


def test_non_stream_text(upstream, client):
    body = whole([{"text": "Hello!"}], prompt=9, candidates=9, thoughts=34)
    upstream.handler = lambda seen: Reply(200, JSON, [body])
    completion = client().chat.completions.create(model=MODEL, messages=USER, temperature=0.1)
    assert completion.id == "resp-abc"
    assert completion.model == "gemini-2.5-flash-001"
    choice = completion.choices[0]
    assert (choice.message.role, choice.message.content) == ("assistant", "Hello!")
    assert choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens == 9
    assert completion.usage.completion_tokens == 43
    assert completion.usage.total_tokens == 52
    assert completion.usage.completion_tokens_details.reasoning_tokens == 34
    seen = upstream.seen[-1]
    assert_sent_safely(seen, stream=False)
    assert json.loads(seen.body) == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "generationConfig": {"temperature": 0.1},
    }


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_stream_tool_calls(upstream, client):
    frames = sse(
        frame([{"text": "Let me check."}], candidates=3),
        frame([weather("Paris", thoughtSignature=SIGNATURE), weather("Rome")], candidates=9),
        frame([{"text": ""}], "STOP", candidates=9),
    )
    upstream.handler = lambda seen: Reply(200, SSE, frames)
    stream = client().chat.completions.create(model=MODEL, messages=USER, tools=TOOLS, stream=True)
    calls: dict = {}
    finish = None
    for chunk in stream:
        choice = chunk.choices[0]
        for call in choice.delta.tool_calls or ():
            calls[call.index] = (call.id, call.type, call.function.name, call.function.arguments)
        finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert [c[1:] for c in calls.values()] == [
        ("function", "weather", '{"city":"Paris"}'),
        ("function", "weather", '{"city":"Rome"}'),
    ]
    ids = [c[0] for c in calls.values()]
    assert all(i.startswith("call_") for i in ids) and len(set(ids)) == 2
    sent = json.loads(upstream.seen[-1].body)
    assert sent["tools"] == [
        {
            "functionDeclarations": [
                {"name": "weather", "parametersJsonSchema": TOOLS[0]["function"]["parameters"]}
            ]
        }
    ]


def test_non_stream_tool_calls_and_a_two_turn_conversation_keeps_the_signature(upstream, client):
    replies = [
        whole([weather("Paris", thoughtSignature=SIGNATURE), weather("Rome")], candidates=9),
        whole([{"text": "Paris 21°C, Rome 25°C."}], candidates=8),
    ]
    upstream.handler = lambda seen: Reply(200, JSON, [replies[len(upstream.seen) - 1]])
    sdk = client()
    messages = [{"role": "user", "content": "Weather in Paris and Rome?"}]
    first = sdk.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    paris, rome = choice.message.tool_calls
    assert (paris.function.name, json.loads(paris.function.arguments)) == (
        "weather",
        {"city": "Paris"},
    )
    assert json.loads(rome.function.arguments) == {"city": "Rome"}
    assert choice.message.reasoning_details == [
        {
            "type": "reasoning.encrypted",
            "data": SIGNATURE,
            "id": paris.id,
            "format": "google-gemini-v1",
            "model": "gemini-2.5-flash",
            "index": 0,
        }
    ]
    # An ordinary agent loop: the assistant message goes back as the SDK returned it.
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": rome.id, "content": "25°C"})
    messages.append({"role": "tool", "tool_call_id": paris.id, "content": '{"temp": 21}'})
    second = sdk.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "Paris 21°C, Rome 25°C."
    assert second.choices[0].finish_reason == "stop"
    contents = json.loads(upstream.seen[1].body)["contents"]
    assert contents[1:] == [
        {
            "role": "model",
            "parts": [
                {**weather("Paris"), "thoughtSignature": SIGNATURE},
                weather("Rome"),
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "weather", "response": {"output": "25°C"}}},
                {"functionResponse": {"name": "weather", "response": {"temp": 21}}},
            ],
        },
    ]


def test_stream_two_turns_rebuilding_the_message_from_deltas(upstream, client):
    replies = [
        sse(frame([weather("Oslo", thoughtSignature=SIGNATURE)], "STOP", candidates=5)),
        sse(frame([{"text": "Cold."}], "STOP", candidates=2)),
    ]
    upstream.handler = lambda seen: Reply(200, SSE, replies[len(upstream.seen) - 1])
    sdk = client()
    messages = [{"role": "user", "content": "Oslo?"}]
    calls, details = [], []
    for chunk in sdk.chat.completions.create(
        model=MODEL, messages=messages, tools=TOOLS, stream=True
    ):
        delta = chunk.choices[0].delta
        calls += [c.model_dump(exclude_none=True) for c in delta.tool_calls or ()]
        details += getattr(delta, "reasoning_details", None) or []
    for call in calls:
        call.pop("index")
    messages.append({"role": "assistant", "tool_calls": calls, "reasoning_details": details})
    messages.append({"role": "tool", "tool_call_id": calls[0]["id"], "content": "-3°C"})
    text = "".join(
        c.choices[0].delta.content or ""
        for c in sdk.chat.completions.create(model=MODEL, messages=messages, stream=True)
    )
    assert text == "Cold."
    model_turn = json.loads(upstream.seen[1].body)["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == SIGNATURE


@pytest.mark.parametrize(
    ("gemini_finish", "openai_finish"),
    [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter")],
)
def test_finish_reasons_streamed_and_not(upstream, client, gemini_finish, openai_finish):
    frames = sse(frame([{"text": "Once upon"}], gemini_finish, candidates=2))
    body = whole([{"text": "Once upon"}], gemini_finish, candidates=2)
    upstream.handler = lambda seen: (
        Reply(200, SSE, frames) if "alt=sse" in seen.path else Reply(200, JSON, [body])
    )
    sdk = client()
    completion = sdk.chat.completions.create(model=MODEL, messages=USER)
    assert completion.choices[0].finish_reason == openai_finish
    assert completion.choices[0].message.content == "Once upon"
    chunks = list(sdk.chat.completions.create(model=MODEL, messages=USER, stream=True))
    assert [c.choices[0].finish_reason for c in chunks][-1] == openai_finish


def test_upstream_errors_keep_status_message_and_retry_after(upstream, client):
    error = {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "58s"}],
        }
    }
    upstream.handler = lambda seen: Reply(429, JSON, [json.dumps(error, indent=2).encode()])
    sdk = client()
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(model=MODEL, messages=USER)
    assert raised.value.status_code == 429
    assert raised.value.body["message"] == "You exceeded your current quota."
    assert raised.value.code == "RESOURCE_EXHAUSTED"
    assert raised.value.response.headers["retry-after"] == "58"
    missing = {"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}
    upstream.handler = lambda seen: Reply(404, JSON, [json.dumps(missing).encode()])
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.chat.completions.create(model=MODEL, messages=USER, stream=True)
    assert raised.value.body["message"] == "models/x is not found"


def test_lockstep_every_upstream_frame_reaches_the_client_before_the_next_is_sent(
    upstream, gemini_gateway
):
    # Frame k+1 leaves the fake Gemini only after the client has read the output of frame k;
    # a translator that held anything back until a later frame would deadlock here.
    words = ["One", " two", " three", " four", " five", " six"]
    frames = sse(*[frame([{"text": w}]) for w in words[:-1]], frame([{"text": words[-1]}], "STOP"))
    upstream.handler = lambda seen: Reply(200, SSE, frames, lockstep=True)
    gateway = gemini_gateway()
    body = {"model": MODEL, "messages": USER, "stream": True}
    got, finish, done = [], None, False
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", json=body, timeout=WAIT
    ) as response:
        for raw in sse_frames(response):
            if raw == b"data: [DONE]":
                done = True
                continue
            choice = json.loads(raw[len(b"data: ") :])["choices"][0]
            finish = choice["finish_reason"] or finish
            if choice["delta"].get("content"):  # each upstream frame's own output frame
                got.append(choice["delta"]["content"])
                upstream.release()
    assert got == words
    assert (finish, done) == ("stop", True)
