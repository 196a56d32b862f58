"""End to end: the official openai, anthropic and google-genai SDKs through their native
passthrough routes on the real server, against a loopback fake upstream; and raw HTTP clients
that do not normalise paths, trying to reach what the allowlist forbids."""

import http.client
import json

import anthropic
import httpx
import httpx2
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

from tests.support.loopback import WAIT, Reply, sse_frames
from tests.support.splits import random_splits

SECRET = "client-secret"  # what every client sends as its key: the upstream must never see it
JSON = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream; charset=utf-8"}
# Headers the upstream sends that the client must never see.
PRIVATE = {"set-cookie": "__cf_bm=x; path=/", "anthropic-organization-id": "org-1"}
PRIVATE["openai-organization"] = "user-1"


def env_for(upstream) -> dict:
    return {
        "OPENAI_BASE_URL": upstream.url + "/v1",
        "OPENAI_API_KEY": "sk-gateway",
        "ANTHROPIC_BASE_URL": upstream.url,
        "ANTHROPIC_API_KEY": "ak-gateway",
        "GEMINI_BASE_URL": upstream.url,
        "GEMINI_API_KEY": "g-gateway",
    }


def sse(events: list[tuple[str | None, dict]], newline: bytes = b"\n") -> bytes:
    out = b""
    for event, data in events:
        if event:
            out += b"event: " + event.encode() + newline
        out += b"data: " + json.dumps(data).encode() + newline + newline
    return out


# -- upstream answers, as each provider sends them ---------------------------------------------

OPENAI_COMPLETION = (
    json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4.1-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello there"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        },
        indent=2,
    ).encode()
    + b"\n"
)
OPENAI_STREAM = (
    sse(
        [
            (
                None,
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "gpt-4.1-mini",
                    "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
                },
            )
            for word in ["Hel", "lo", " there"]
        ]
    )
    + b"data: [DONE]\n\n"
)
OPENAI_MODEL = b'{"id": "ft:gpt-4o-mini:org:custom@x:abc", "object": "model", "created": 1, '
OPENAI_MODEL += b'"owned_by": "org"}'

ANTHROPIC_MESSAGE = json.dumps(
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test-model",
        "content": [{"type": "text", "text": "Hello there"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    },
    indent=1,
).encode()
ANTHROPIC_STREAM = sse(
    [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-test-model",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 3, "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        ("ping", {"type": "ping"}),
        *[
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": w},
                },
            )
            for w in ["Hel", "lo", " there"]
        ],
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 3},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
)  # fmt: skip
ANTHROPIC_COUNT = b'{"input_tokens": 11}'


def gemini_chunk(text: str, finish: bool = False) -> dict:
    candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = "STOP"
    return {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
        "modelVersion": "gemini-2.5-flash",
    }


GEMINI_RESPONSE = json.dumps(gemini_chunk("Hello there", finish=True), indent=2).encode() + b"\n"
GEMINI_STREAM = sse(
    [(None, gemini_chunk("Hel")), (None, gemini_chunk("lo")), (None, gemini_chunk(" there", True))],
    newline=b"\r\n",
)
GEMINI_COUNT = b'{\n  "totalTokens": 11\n}\n'
GEMINI_EMBEDDINGS = b'{\n  "embeddings": [{"values": [0.25, -0.5]}]\n}\n'


def answer(seen) -> Reply:
    """The fake upstream: every provider's model endpoints, as the gateway should call them."""
    path = seen.path.partition("?")[0]
    stream = bool(seen.body and json.loads(seen.body).get("stream"))
    table = {
        ("POST", "/v1/chat/completions"): OPENAI_STREAM if stream else OPENAI_COMPLETION,
        ("GET", "/v1/models/ft:gpt-4o-mini:org:custom@x:abc"): OPENAI_MODEL,
        ("POST", "/v1/messages"): ANTHROPIC_STREAM if stream else ANTHROPIC_MESSAGE,
        ("POST", "/v1/messages/count_tokens"): ANTHROPIC_COUNT,
        ("POST", "/v1/models/gemini-2.5-flash:generateContent"): GEMINI_RESPONSE,
        ("POST", "/v1/models/gemini-2.5-flash:streamGenerateContent"): GEMINI_STREAM,
        ("POST", "/v1/models/gemini-2.5-flash:countTokens"): GEMINI_COUNT,
        ("POST", "/v1/models/text-embedding-004:batchEmbedContents"): GEMINI_EMBEDDINGS,
    }  # fmt: skip
    data = table.get((seen.method, path))
    if data is None:
        return Reply(418, JSON, [b'{"error": "the gateway called an unexpected path"}'])
    streaming = data in (OPENAI_STREAM, ANTHROPIC_STREAM, GEMINI_STREAM)
    headers = {**(SSE if streaming else JSON), **PRIVATE, "x-request-id": "req-up"}
    return Reply(200, headers, random_splits(data, len(data)))


class Recorder:
    """An HTTP client for an SDK that keeps every request it sent, body included (the three
    SDKs are built on httpx2)."""

    def __init__(self) -> None:
        self.sent: list[httpx2.Request] = []
        self.client = httpx2.Client(
            event_hooks={"request": [self._keep]}, timeout=WAIT, trust_env=False
        )

    def _keep(self, request: httpx2.Request) -> None:
        request.read()
        self.sent.append(request)


def assert_relayed(recorder, upstream, key_header: str, key_value: str) -> None:
    """Each SDK request reached the upstream with its body byte for byte, the gateway's key and
    none of the client's credentials."""
    assert len(upstream.seen) == len(recorder.sent)
    for sent, seen in zip(recorder.sent, upstream.seen, strict=True):
        assert seen.body == sent.content
        headers = {k.lower(): v for k, v in seen.headers.items()}
        assert headers[key_header] == key_value
        others = {"authorization", "x-api-key", "x-goog-api-key", "cookie"} - {key_header}
        assert not others & set(headers)
        assert SECRET not in json.dumps(headers) + seen.path


def assert_private_headers_dropped(response: httpx.Response) -> None:
    assert not set(PRIVATE) & set(response.headers)
    assert response.headers["x-request-id"] == "req-up"


# -- the three SDKs -------------------------------------------------------------------------


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_openai_sdk_through_its_passthrough_route(upstream, gateway_for, http_client):
    upstream.handler = answer
    gateway = gateway_for(env_for(upstream), http_client)
    recorder = Recorder()
    client = openai.OpenAI(
        base_url=gateway.url + "/openai/v1",
        api_key=SECRET,
        http_client=recorder.client,
        max_retries=0,
        default_headers={"cookie": f"s={SECRET}", "openai-organization": "org-client"},
    )
    messages = [{"role": "user", "content": "Say hello"}]
    completion = client.chat.completions.create(model="gpt-4.1-mini", messages=messages)
    assert completion.choices[0].message.content == "Hello there"
    assert completion.usage.total_tokens == 5
    stream = client.chat.completions.create(model="gpt-4.1-mini", messages=messages, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream) == "Hello there"
    model = client.models.retrieve("ft:gpt-4o-mini:org:custom@x:abc")
    assert model.owned_by == "org"

    assert [s.path for s in upstream.seen] == [
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/v1/models/ft:gpt-4o-mini:org:custom@x:abc",
    ]
    assert_relayed(recorder, upstream, "authorization", "Bearer sk-gateway")
    assert all("openai-organization" not in {k.lower() for k in s.headers} for s in upstream.seen)


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_anthropic_sdk_through_its_passthrough_route(upstream, gateway_for, http_client):
    upstream.handler = answer
    gateway = gateway_for(env_for(upstream), http_client)
    recorder = Recorder()
    client = anthropic.Anthropic(
        base_url=gateway.url + "/anthropic",
        api_key=SECRET,
        http_client=recorder.client,
        max_retries=0,
        default_headers={"anthropic-beta": "tools-2024", "x-api-key": SECRET},
    )
    messages = [{"role": "user", "content": "Say hello"}]
    message = client.messages.create(model="claude-test-model", max_tokens=50, messages=messages)
    assert message.content[0].text == "Hello there"
    with client.messages.stream(
        model="claude-test-model", max_tokens=50, messages=messages
    ) as stream:
        assert "".join(stream.text_stream) == "Hello there"
        assert stream.get_final_message().stop_reason == "end_turn"
    count = client.messages.count_tokens(model="claude-test-model", messages=messages)
    assert count.input_tokens == 11

    assert [s.path for s in upstream.seen] == [
        "/v1/messages",
        "/v1/messages",
        "/v1/messages/count_tokens",
    ]
    assert_relayed(recorder, upstream, "x-api-key", "ak-gateway")
    for sent, seen in zip(recorder.sent, upstream.seen, strict=True):
        headers = {k.lower(): v for k, v in seen.headers.items()}
        assert headers["anthropic-version"] == sent.headers["anthropic-version"]
        assert headers["anthropic-beta"] == "tools-2024"


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_google_genai_sdk_through_its_passthrough_route(upstream, gateway_for, http_client):
    upstream.handler = answer
    gateway = gateway_for(env_for(upstream), http_client)
    recorder = Recorder()
    client = genai.Client(
        api_key=SECRET,
        http_options=genai_types.HttpOptions(
            base_url=gateway.url + "/gemini", httpx_client=recorder.client
        ),
    )
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
    assert response.text == "Hello there"
    chunks = list(
        client.models.generate_content_stream(model="gemini-2.5-flash", contents="Say hello")
    )
    assert "".join(c.text for c in chunks) == "Hello there"
    assert client.models.count_tokens(model="gemini-2.5-flash", contents="x").total_tokens == 11
    embedded = client.models.embed_content(model="text-embedding-004", contents="x")
    assert embedded.embeddings[0].values == [0.25, -0.5]

    assert [s.path for s in upstream.seen] == [
        "/v1/models/gemini-2.5-flash:generateContent",
        "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        "/v1/models/gemini-2.5-flash:countTokens",
        "/v1/models/text-embedding-004:batchEmbedContents",
    ]
    assert_relayed(recorder, upstream, "x-goog-api-key", "g-gateway")
    assert all("x-goog-api-client" in s.headers for s in upstream.seen)


# -- bytes unchanged both ways --------------------------------------------------------------

RAW_CASES = [
    ("/openai/v1/chat/completions", {"model": "m", "messages": [], "stream": True}, OPENAI_STREAM),
    ("/openai/v1/chat/completions", {"model": "m", "messages": []}, OPENAI_COMPLETION),
    ("/anthropic/v1/messages", {"model": "m", "stream": True}, ANTHROPIC_STREAM),
    ("/anthropic/v1/messages", {"model": "m"}, ANTHROPIC_MESSAGE),
    ("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", {}, GEMINI_STREAM),
    ("/gemini/v1/models/gemini-2.5-flash:generateContent", {}, GEMINI_RESPONSE),
]


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
@pytest.mark.parametrize(("target", "body", "expected"), RAW_CASES)
def test_bytes_are_unchanged_both_ways(upstream, gateway_for, http_client, target, body, expected):
    kind = SSE if body.get("stream") or "stream" in target else JSON
    reply_headers = {**kind, **PRIVATE, "x-request-id": "req-up"}
    upstream.handler = lambda seen: Reply(200, reply_headers, random_splits(expected, 5))
    gateway = gateway_for(env_for(upstream), http_client)
    raw = json.dumps(body, indent=3).encode() + b"  \n"  # unusual spacing: nothing re-encodes
    headers = {"content-type": "application/json", "x-api-key": SECRET}
    with httpx.stream("POST", gateway.url + target, content=raw, headers=headers) as response:
        assert response.status_code == 200
        received = b"".join(response.iter_raw())
        assert_private_headers_dropped(response)
    assert received == expected
    (seen,) = upstream.seen
    assert seen.body == raw
    assert SECRET not in json.dumps(seen.headers)


def test_a_passthrough_stream_is_relayed_as_it_arrives(upstream, gateway_for):
    # Chunk k+1 leaves the upstream only after the client has read chunk k: a relay that
    # buffers anything deadlocks here and the read times out.
    frames = [f'event: ping\ndata: {{"n": {i}}}\n\n'.encode() for i in range(8)]
    frames.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    upstream.handler = lambda seen: Reply(200, SSE, frames, lockstep=True)
    gateway = gateway_for(env_for(upstream))
    got = []
    with httpx.stream(
        "POST", gateway.url + "/anthropic/v1/messages", content=b"{}", timeout=WAIT
    ) as response:
        for frame in sse_frames(response):
            got.append(frame + b"\n\n")
            upstream.release()
    assert got == frames


def test_gemini_key_in_the_query_is_dropped(upstream, gateway_for):
    upstream.handler = lambda seen: Reply(200, JSON, [GEMINI_RESPONSE])
    gateway = gateway_for(env_for(upstream))
    target = "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
    response = httpx.post(
        gateway.url + target, params={"key": SECRET, "alt": "json"}, content=b"{}"
    )
    assert response.content == GEMINI_RESPONSE
    (seen,) = upstream.seen
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent?alt=json"
    assert seen.headers["x-goog-api-key"] == "g-gateway"


def test_a_named_provider_gets_its_own_route(upstream, gateway_for):
    upstream.handler = lambda seen: Reply(200, JSON, [OPENAI_COMPLETION])
    config = f'[providers.groq]\nbase_url = "{upstream.url}/openai/v1"\napi_key_env = "GROQ_KEY"\n'
    gateway = gateway_for({"EDGERELAY_CONFIG": config, "GROQ_KEY": "groq-gateway"})
    client = openai.OpenAI(base_url=gateway.url + "/groq/v1", api_key=SECRET, max_retries=0)
    completion = client.chat.completions.create(model="llama", messages=[])
    assert completion.choices[0].message.content == "Hello there"
    (seen,) = upstream.seen
    assert seen.path == "/openai/v1/chat/completions"
    assert seen.headers["Authorization"] == "Bearer groq-gateway"


# -- errors: the provider's own, and the gateway's in the provider's shape ------------------------


def test_upstream_errors_reach_each_sdk_unchanged(upstream, gateway_for):
    errors = {
        "/v1/chat/completions": (
            404,
            b'{"error": {"message": "The model `nope` does not exist", "type": '
            b'"invalid_request_error", "param": null, "code": "model_not_found"}}',
        ),
        "/v1/messages": (
            429,
            b'{"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}',
        ),
        "/v1beta/models/gemini-2.5-flash:generateContent": (
            400,
            b'{"error": {"code": 400, "message": "bad contents", "status": "INVALID_ARGUMENT"}}',
        ),
    }

    def handler(seen):
        status, body = errors[seen.path]
        return Reply(status, {**JSON, "retry-after": "0"}, [body])

    upstream.handler = handler
    gateway = gateway_for(env_for(upstream))
    oa = openai.OpenAI(base_url=gateway.url + "/openai/v1", api_key=SECRET, max_retries=0)
    with pytest.raises(openai.NotFoundError) as raised:
        oa.chat.completions.create(model="nope", messages=[])
    assert raised.value.code == "model_not_found"
    assert raised.value.response.content == errors["/v1/chat/completions"][1]

    an = anthropic.Anthropic(base_url=gateway.url + "/anthropic", api_key=SECRET, max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as raised:
        an.messages.create(model="m", max_tokens=1, messages=[])
    assert raised.value.body["error"]["message"] == "slow down"

    ge = genai.Client(
        api_key=SECRET,
        http_options=genai_types.HttpOptions(
            base_url=gateway.url + "/gemini", api_version="v1beta"
        ),
    )
    with pytest.raises(genai_errors.ClientError) as raised:
        ge.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert (raised.value.code, raised.value.status) == (400, "INVALID_ARGUMENT")
    assert raised.value.message == "bad contents"
    assert len(upstream.seen) == 3


def test_each_sdk_raises_its_own_exception_for_gateway_errors(upstream, gateway_for):
    # No keys configured: the gateway answers 503 itself, naming what to set.
    gateway = gateway_for({})
    oa = openai.OpenAI(base_url=gateway.url + "/openai/v1", api_key=SECRET, max_retries=0)
    with pytest.raises(openai.InternalServerError) as raised:
        oa.chat.completions.create(model="gpt-4.1", messages=[])
    assert raised.value.status_code == 503
    assert "OPENAI_API_KEY" in raised.value.message

    an = anthropic.Anthropic(base_url=gateway.url + "/anthropic", api_key=SECRET, max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as raised:
        an.messages.create(model="m", max_tokens=1, messages=[])
    assert raised.value.status_code == 503
    assert raised.value.body["type"] == "error"
    assert "ANTHROPIC_API_KEY" in raised.value.body["error"]["message"]

    ge = genai.Client(
        api_key=SECRET, http_options=genai_types.HttpOptions(base_url=gateway.url + "/gemini")
    )
    with pytest.raises(genai_errors.ServerError) as raised:
        ge.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert (raised.value.code, raised.value.status) == (503, "UNAVAILABLE")
    assert "GEMINI_API_KEY" in raised.value.message
    assert upstream.seen == []


def test_sdk_calls_outside_the_allowlist_are_404_without_upstream_call(upstream, gateway_for):
    upstream.handler = answer
    gateway = gateway_for(env_for(upstream))
    oa = openai.OpenAI(base_url=gateway.url + "/openai/v1", api_key=SECRET, max_retries=0)
    for call in (
        oa.files.list,
        oa.batches.list,
        oa.fine_tuning.jobs.list,
        oa.chat.completions.list,  # stored completions: GET chat/completions
        lambda: oa.models.delete("ft:gpt-4o-mini:org:x:1"),
    ):
        with pytest.raises(openai.NotFoundError):
            call()
    an = anthropic.Anthropic(base_url=gateway.url + "/anthropic", api_key=SECRET, max_retries=0)
    for call in (an.messages.batches.list, lambda: an.models.retrieve("claude-test-model")):
        with pytest.raises(anthropic.NotFoundError) as raised:
            call()
        assert raised.value.body["error"]["type"] == "not_found_error"
    ge = genai.Client(
        api_key=SECRET, http_options=genai_types.HttpOptions(base_url=gateway.url + "/gemini")
    )
    for call in (lambda: list(ge.batches.list()), lambda: list(ge.files.list())):
        with pytest.raises(genai_errors.ClientError) as raised:
            call()
        assert (raised.value.code, raised.value.status) == (404, "NOT_FOUND")
    assert upstream.seen == []


# -- clients that do not normalise paths ----------------------------------------------------

RAW_PATHS = [
    ("GET", "/anthropic/v1/messages/../organizations"),
    ("POST", "/anthropic/v1/messages/../messages"),
    ("GET", "/anthropic/v1/messages/%2e%2e/organizations"),
    ("GET", "/anthropic/v1/messages/%2E./organizations"),
    ("GET", "/anthropic/v1/messages/.%2E/organizations"),
    ("POST", "/anthropic/v1/messages/./batches"),
    ("POST", "/anthropic/v1/messages/%2e/batches"),
    ("GET", "/anthropic/v1/messages/..%2Forganizations"),
    ("POST", "/anthropic/v1//messages"),
    ("POST", "/anthropic/v1/messages/batches"),
    ("GET", "/openai/v1/models%2Fx"),
    ("GET", "/openai/v1/models%2f..%2f..%2forganization%2fcosts"),
    ("GET", "/openai/v1/models/..%5C..%5Cfiles"),
    ("GET", "/openai/v1/models/../files"),
    ("GET", "/openai/v1/chat/completions"),
    ("DELETE", "/openai/v1/models/ft:gpt-4o-mini:org:x:1"),
    ("POST", "/gemini/v1beta/models/%2E%2E/files"),
    ("POST", "/gemini/v1beta/models/gemini-2.5-flash:batchGenerateContent"),
    ("POST", "/gemini/v1beta/models/gemini-2.5-flash%2F..%2F..%2Ffiles:generateContent"),
]


def raw_request(url: str, method: str, path: str) -> tuple[int, bytes]:
    """Send ``path`` exactly as written: http.client puts it on the request line untouched."""
    host = httpx.URL(url)
    connection = http.client.HTTPConnection(host.host, host.port, timeout=WAIT)
    try:
        connection.request(method, path, body=b"{}", headers={"x-api-key": SECRET})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(("method", "path"), RAW_PATHS)
def test_raw_paths_cannot_reach_what_the_allowlist_forbids(upstream, gateway_for, method, path):
    upstream.handler = answer
    gateway = gateway_for(env_for(upstream))
    status, body = raw_request(gateway.url, method, path)
    assert status in (400, 404)
    flavor = path.split("/")[1]
    error = json.loads(body)
    if flavor == "anthropic":
        assert error["type"] == "error"
    elif flavor == "gemini":
        assert error["error"]["code"] == status
    else:
        assert "type" in error["error"]
    assert upstream.seen == []
