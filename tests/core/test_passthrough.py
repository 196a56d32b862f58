"""Native passthrough routes in core: the allowlist table, key injection, header and query
filtering, and every way of asking for something else, which must end with no upstream call."""

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgerelay.core import Request
from edgerelay.core.fetch import FetchError
from edgerelay.core.passthrough import ALLOWLIST, allowed
from tests.core.gateway_helpers import make_gateway
from tests.support.drive import collect, drive
from tests.support.fake_fetch import FakeResponse

NAMED = """
[providers.groq]
kind = "openai"
base_url = "https://groq.test/openai/v1"
api_key_env = "GROQ_API_KEY"
[providers.claude-eu]
kind = "anthropic"
base_url = "https://claude-eu.test/"
api_key_env = "CLAUDE_EU_KEY"
[providers.gem-eu]
kind = "gemini"
base_url = "https://gem-eu.test"
api_key_env = "GEM_EU_KEY"
[providers.local]
kind = "anthropic"
base_url = "http://127.0.0.1:9999"
"""
ENV = {
    "OPENAI_API_KEY": "sk-gateway",
    "ANTHROPIC_API_KEY": "ak-gateway",
    "GEMINI_API_KEY": "g-gateway",
    "OPENAI_BASE_URL": "https://oa.test/v1",
    "ANTHROPIC_BASE_URL": "https://an.test",
    "GEMINI_BASE_URL": "https://ge.test",
    "EDGERELAY_CONFIG": NAMED,
    "GROQ_API_KEY": "groq-gateway",
    "CLAUDE_EU_KEY": "claude-eu-gateway",
    "GEM_EU_KEY": "gem-eu-gateway",
}

# Everything a client might send: its own credentials for every provider, account selectors,
# transport and proxy headers, telemetry, and the provider switches that must get through.
SECRET = "client-secret"
CLIENT_HEADERS = {
    "authorization": f"Bearer {SECRET}",
    "x-api-key": SECRET,
    "x-goog-api-key": SECRET,
    "cookie": f"session={SECRET}",
    "openai-organization": "org-client",
    "openai-project": "proj-client",
    "x-forwarded-for": "10.0.0.1",
    "x-forwarded-host": "evil.test",
    "host": "gateway.test",
    "content-length": "999",
    "accept-encoding": "gzip, br",
    "connection": "keep-alive",
    "user-agent": "Browser/1.0",
    "x-stainless-os": "Linux",
    "anthropic-dangerous-direct-browser-access": "true",
    "content-type": "application/json",
    "accept": "application/json",
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "tools-2024",
    "openai-beta": "assistants=v2",
    "x-goog-api-client": "google-genai-sdk/1",
}
SWITCHES = {
    "openai": {"openai-beta"},
    "anthropic": {"anthropic-version", "anthropic-beta"},
    "gemini": {"x-goog-api-client"},
}
KEY_HEADERS = {"openai": "authorization", "anthropic": "x-api-key", "gemini": "x-goog-api-key"}
BODY = b'{"model":  "m", "messages": [{"role": "user", "content": "h\\u00e9"}]}\n'

# The policy, written out again on purpose: ALLOWLIST may only change together with this table.
EXPECTED_ALLOWLIST = {
    "openai": {
        ("POST", "chat/completions"),
        ("POST", "responses"),
        ("POST", "embeddings"),
        ("GET", "models"),
        ("GET", "models/{id}"),
    },
    "anthropic": {
        ("POST", "v1/messages"),
        ("POST", "v1/messages/count_tokens"),
        ("GET", "v1/models"),
    },
    "gemini": {
        (method, f"{version}/{path}")
        for version in ("v1beta", "v1")
        for method, path in [
            ("POST", "models/{model}:generateContent"),
            ("POST", "models/{model}:streamGenerateContent"),
            ("POST", "models/{model}:countTokens"),
            ("POST", "models/{model}:embedContent"),
            ("POST", "models/{model}:batchEmbedContents"),
            ("GET", "models"),
        ]
    },
}

# (kind, key, method, gateway path with query, upstream URL)
ALLOWED = [
    ("openai", "sk-gateway", "POST", "/openai/v1/chat/completions", "https://oa.test/v1/chat/completions"),
    ("openai", "sk-gateway", "POST", "/openai/v1/responses", "https://oa.test/v1/responses"),
    ("openai", "sk-gateway", "POST", "/openai/v1/embeddings", "https://oa.test/v1/embeddings"),
    ("openai", "sk-gateway", "GET", "/openai/v1/models", "https://oa.test/v1/models"),
    ("openai", "sk-gateway", "GET", "/openai/v1/models/gpt-4.1", "https://oa.test/v1/models/gpt-4.1"),
    (
        "openai",
        "sk-gateway",
        "GET",
        "/openai/v1/models/ft:gpt-4o-mini:org:custom@x:abc123",
        "https://oa.test/v1/models/ft:gpt-4o-mini:org:custom@x:abc123",
    ),
    # Escapes of safe characters are decoded: the upstream gets the path that was matched.
    ("openai", "sk-gateway", "GET", "/openai/v1/models/ft%3Agpt-4o", "https://oa.test/v1/models/ft:gpt-4o"),
    ("anthropic", "ak-gateway", "POST", "/anthropic/v1/messages", "https://an.test/v1/messages"),
    (
        "anthropic",
        "ak-gateway",
        "POST",
        "/anthropic/v1/messages/count_tokens",
        "https://an.test/v1/messages/count_tokens",
    ),
    ("anthropic", "ak-gateway", "GET", "/anthropic/v1/models?limit=20&after_id=x", "https://an.test/v1/models?limit=20&after_id=x"),
    *[
        (
            "gemini",
            "g-gateway",
            "POST",
            f"/gemini/{version}/models/gemini-2.5-flash:{verb}{query}",
            f"https://ge.test/{version}/models/gemini-2.5-flash:{verb}{query}",
        )
        for version in ("v1beta", "v1")
        for verb, query in [
            ("generateContent", ""),
            ("streamGenerateContent", "?alt=sse"),
            ("countTokens", ""),
            ("embedContent", ""),
            ("batchEmbedContents", ""),
        ]
    ],
    ("gemini", "g-gateway", "GET", "/gemini/v1beta/models?pageSize=50", "https://ge.test/v1beta/models?pageSize=50"),
    ("gemini", "g-gateway", "GET", "/gemini/v1/models", "https://ge.test/v1/models"),
    # Named providers: the same, under their name, shaped by their kind.
    ("openai", "groq-gateway", "POST", "/groq/v1/chat/completions", "https://groq.test/openai/v1/chat/completions"),
    ("openai", "groq-gateway", "GET", "/groq/v1/models/llama-3.3-70b", "https://groq.test/openai/v1/models/llama-3.3-70b"),
    ("anthropic", "claude-eu-gateway", "POST", "/claude-eu/v1/messages", "https://claude-eu.test/v1/messages"),
    (
        "gemini",
        "gem-eu-gateway",
        "POST",
        "/gem-eu/v1beta/models/gemini-2.5-pro:generateContent",
        "https://gem-eu.test/v1beta/models/gemini-2.5-pro:generateContent",
    ),
]  # fmt: skip

# (method, path): on the provider's route, outside its allowlist.
NOT_ALLOWED = {
    "openai": [
        ("GET", "/openai/v1/chat/completions"),  # lists stored completions
        ("GET", "/openai/v1/chat/completions/chatcmpl-1"),
        ("POST", "/openai/v1/chat/completions/chatcmpl-1"),
        ("DELETE", "/openai/v1/chat/completions/chatcmpl-1"),
        ("GET", "/openai/v1/chat/completions/chatcmpl-1/messages"),
        ("DELETE", "/openai/v1/models/ft:gpt-4o-mini:org:x:1"),
        ("POST", "/openai/v1/models"),
        ("PUT", "/openai/v1/chat/completions"),
        ("PATCH", "/openai/v1/chat/completions"),
        ("HEAD", "/openai/v1/models"),
        ("OPTIONS", "/openai/v1/chat/completions"),
        ("post", "/openai/v1/chat/completions"),
        ("GET", "/openai/v1/responses/resp_1"),
        ("DELETE", "/openai/v1/responses/resp_1"),
        ("GET", "/openai/v1/responses/resp_1/input_items"),
        ("GET", "/openai/v1/files"),
        ("POST", "/openai/v1/files"),
        ("GET", "/openai/v1/files/file-1/content"),
        ("POST", "/openai/v1/uploads"),
        ("POST", "/openai/v1/batches"),
        ("GET", "/openai/v1/batches"),
        ("POST", "/openai/v1/fine_tuning/jobs"),
        ("GET", "/openai/v1/organization/costs"),
        ("GET", "/openai/v1/organization/admin_api_keys"),
        ("POST", "/openai/v1/vector_stores"),
        ("POST", "/openai/v1/assistants"),
        ("POST", "/openai/v1/completions"),
        ("POST", "/openai/chat/completions"),  # no /v1
        ("POST", "/openai/v2/chat/completions"),
        ("POST", "/openai/v1"),
        ("GET", "/openai"),
        ("GET", "/openai/v1/models/gpt-4/extra"),
        ("GET", "/openai/v1/models/-gpt"),
        ("GET", "/openai/v1/models/gpt%2B4"),  # '+' is not a model-id character
        ("GET", "/openai/v1/models/%252e%252e"),  # decodes once, to '%2e%2e': not an id
        ("POST", "/openai/v1/Chat/Completions"),
        ("POST", "/openai/v1/chat/completions;x=1"),
        ("POST", "/groq/v1/files"),
    ],
    "anthropic": [
        ("POST", "/anthropic/v1/messages/batches"),
        ("GET", "/anthropic/v1/messages/batches"),
        ("GET", "/anthropic/v1/messages/batches/msgbatch_1/results"),
        ("GET", "/anthropic/v1/messages"),
        ("DELETE", "/anthropic/v1/messages"),
        ("GET", "/anthropic/v1/messages/count_tokens"),
        ("GET", "/anthropic/v1/models/claude-sonnet-4-5"),
        ("GET", "/anthropic/v1/organizations/me"),
        ("GET", "/anthropic/v1/organizations/api_keys"),
        ("POST", "/anthropic/v1/files"),
        ("GET", "/anthropic/v1/files"),
        ("POST", "/anthropic/v1/skills"),
        ("POST", "/anthropic/v1/complete"),
        ("POST", "/anthropic/messages"),
        ("POST", "/anthropic/v1/messages/x"),
        ("POST", "/anthropic"),
        ("POST", "/anthropic/"),
        ("POST", "/claude-eu/v1/messages/batches"),
    ],
    "gemini": [
        ("POST", "/gemini/v1beta/models/gemini-2.5-flash:batchGenerateContent"),
        ("POST", "/gemini/v1beta/models/gemini-2.5-flash:batchGenerateContent"),
        ("POST", "/gemini/v1beta/models/gemini-2.5-flash:predictLongRunning"),
        ("POST", "/gemini/v1beta/models/x:batchGenerateContent:countTokens"),
        ("POST", "/gemini/v1beta/models/gemini-2.5-flash:generatecontent"),
        ("POST", "/gemini/v1beta/models/gemini-2.5-flash"),
        ("POST", "/gemini/v1beta/models/:generateContent"),
        ("GET", "/gemini/v1beta/models/gemini-2.5-flash"),
        ("GET", "/gemini/v1beta/models/gemini-2.5-flash:generateContent"),
        ("POST", "/gemini/v1alpha/models/gemini-2.5-flash:generateContent"),
        ("POST", "/gemini/v1beta/tunedModels/x:generateContent"),
        ("GET", "/gemini/v1beta/tunedModels"),
        ("GET", "/gemini/v1beta/files"),
        ("POST", "/gemini/upload/v1beta/files"),
        ("GET", "/gemini/v1beta/batches"),
        ("GET", "/gemini/v1beta/cachedContents"),
        ("POST", "/gemini/v1beta/cachedContents"),
        ("GET", "/gemini/v1beta/operations"),
        ("POST", "/gemini/v1beta/models"),
        ("POST", "/gem-eu/v1beta/files"),
    ],
}


def dot_variants(dots: int) -> list[str]:
    """'.' or '..' in every raw and percent-encoded case variant."""
    return ["".join(p) for p in itertools.product([".", "%2e", "%2E"], repeat=dots)]


# Paths no HTTP client or upstream may get to reinterpret: 400 before any matching.
MALFORMED = {
    "openai": [
        *[f"/openai/v1/models/{d}/organization/costs" for d in dot_variants(2)],
        *[f"/openai/v1/{d}/v1/files" for d in dot_variants(1)],
        "/openai/v1/../v1/chat/completions",
        "/openai/../openai/v1/chat/completions",
        "/openai/v1/chat/completions/..",
        "/openai/v1/models%2Fx",
        "/openai/v1/models%2fx",
        "/openai/v1/chat%2Fcompletions",
        "/openai/v1/models/x%5C..%5Cfiles",
        "/openai/v1/models/x\\..\\files",
        "/openai/v1//chat/completions",
        "/openai//v1/chat/completions",
        "/openai/v1/chat/completions/",
        "/openai/v1/models/gpt%00",
        "/openai/v1/models/gpt%0a",
        "/openai/v1/models/gpt%20x",
        "/openai/v1/models/gpt\tx",
        "/openai/v1/models/gpt x",
        "/openai/v1/models/gpt%",
        "/openai/v1/models/gpt%zz",
        "/openai/v1/models/gpt%2",
        "/openai/v1/models/gpt\u00e9",
        "/openai/v1/models/gpt%C3%A9",
    ],
    "anthropic": [
        *[f"/anthropic/v1/messages/{d}/organizations" for d in dot_variants(2)],
        *[f"/anthropic/v1/messages/{d}/count_tokens" for d in dot_variants(1)],
        "/anthropic/v1/messages/../../v1/organizations/me",
        "/anthropic/v1/messages/..%2forganizations",
        "/anthropic/v1/messages/%2e%2e%2Forganizations",
        "/anthropic/v1%2Fmessages",
        "/anthropic/v1/messages%5c..%5corganizations",
        "/anthropic/v1//messages",
        "/anthropic//v1/messages",
        "/anthropic/v1/messages/",
        "/anthropic/v1/messages%00",
        "/anthropic/v1/messages\x00",
        "/anthropic/v1/messages\r\nx-api-key: y",
    ],
    "gemini": [
        *[f"/gemini/v1beta/models/{d}/files" for d in dot_variants(2)],
        "/gemini/v1beta/models/../files",
        "/gemini/v1beta/models/gemini-2.5-flash%2F..%2F..%2Ffiles:generateContent",
        "/gemini/v1beta/models/gemini-2.5-flash%2f:generateContent",
        "/gemini/v1beta/models//gemini-2.5-flash:generateContent",
        "/gemini/v1beta\\models\\x:generateContent",
        "/gemini/v1beta/models/x%00:generateContent",
    ],
}


def send(gateway, method, target, headers=None, body=b""):
    path, _, query = target.partition("?")
    response = drive(gateway.handle(Request(method, path, query, headers or {}, body)))
    chunks = collect(response.stream) if response.stream is not None else None
    drive(response.aclose())
    return response, chunks


def ok_upstream(request):
    headers = {
        "content-type": "application/json",
        "set-cookie": "__cf_bm=x",
        "anthropic-organization-id": "org-1",
        "openai-organization": "org-1",
        "x-request-id": "req-1",
    }
    return FakeResponse(200, headers, [b'{"ok": ', b"true}"])


def assert_flavor(response, kind, status):
    assert response.status == status
    assert ("content-type", "application/json") in response.headers
    body = json.loads(response.body)
    if kind == "anthropic":
        assert body["type"] == "error"
        assert set(body["error"]) == {"type", "message"}
        return body["error"]["message"]
    if kind == "gemini":
        assert set(body["error"]) == {"code", "message", "status"}
        assert body["error"]["code"] == status
        return body["error"]["message"]
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]["message"]


def test_the_allowlist_is_exactly_the_published_policy():
    assert {kind: set(routes) for kind, routes in ALLOWLIST.items()} == EXPECTED_ALLOWLIST


@pytest.mark.parametrize(("kind", "key", "method", "target", "url"), ALLOWED)
def test_allowed_routes_reach_the_upstream_with_the_gateway_key_only(
    kind, key, method, target, url
):
    gateway, fetch = make_gateway(ok_upstream, ENV)
    body = BODY if method == "POST" else b""
    response, chunks = send(gateway, method, target, CLIENT_HEADERS, body)
    assert response.status == 200
    assert chunks == [b'{"ok": ', b"true}"]
    assert response.upstream is fetch.responses[0]
    assert fetch.responses[0].closed
    names = {name for name, _ in response.headers}
    ours = {"x-edgerelay-attempts", "x-edgerelay-target"}
    assert names - ours == {"content-type", "x-request-id"}  # no cookie, no account id
    assert dict(response.headers)["x-edgerelay-attempts"] == "1"
    (sent,) = fetch.requests
    assert (sent.method, sent.url) == (method, url)
    assert sent.body == (BODY if method == "POST" else None)  # byte for byte
    key_header = KEY_HEADERS[kind]
    expected_key = f"Bearer {key}" if kind == "openai" else key
    assert sent.headers == {
        "content-type": "application/json",
        "accept": "application/json",
        key_header: expected_key,
        **{name: CLIENT_HEADERS[name] for name in SWITCHES[kind]},
    }
    assert SECRET not in json.dumps(sent.headers) + sent.url


def test_gemini_key_in_the_query_is_never_forwarded():
    gateway, fetch = make_gateway(ok_upstream, ENV)
    target = "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    query = f"key={SECRET}&alt=sse&KEY={SECRET}&k%65y={SECRET}&key&keyring=1&x=a%3Db"
    response, _ = send(gateway, "POST", f"{target}?{query}", {}, BODY)
    assert response.status == 200
    (sent,) = fetch.requests
    assert sent.url == f"https://ge.test{target[len('/gemini') :]}?alt=sse&keyring=1&x=a%3Db"
    assert sent.headers["x-goog-api-key"] == "g-gateway"


@pytest.mark.parametrize("query", ["a=1#frag", "a=\u00e9", "a=1\x00", "a b", "k%zzey=1"])
def test_an_unforwardable_query_is_400_and_not_echoed(query):
    gateway, fetch = make_gateway(ok_upstream, ENV)
    target = "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
    response, _ = send(gateway, "POST", f"{target}?{query}", {}, BODY)
    message = assert_flavor(response, "gemini", 400)
    assert query not in message
    assert fetch.requests == []


@pytest.mark.parametrize(
    ("kind", "method", "path"),
    [(kind, method, path) for kind, cases in NOT_ALLOWED.items() for method, path in cases],
)
def test_everything_off_the_allowlist_is_404_in_the_provider_shape_without_upstream_call(
    kind, method, path
):
    gateway, fetch = make_gateway(ok_upstream, ENV)
    response, _ = send(gateway, method, path, CLIENT_HEADERS, BODY)
    assert_flavor(response, kind, 404)
    assert fetch.requests == []


@pytest.mark.parametrize(
    ("kind", "path"), [(kind, path) for kind, paths in MALFORMED.items() for path in paths]
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_dot_segments_encoded_slashes_and_empty_segments_are_400_without_upstream_call(
    kind, path, method
):
    gateway, fetch = make_gateway(ok_upstream, ENV)
    response, _ = send(gateway, method, path, CLIENT_HEADERS, BODY)
    assert_flavor(response, kind, 400)
    assert fetch.requests == []


def test_every_dot_variant_is_listed():
    assert sorted(dot_variants(2)) == sorted(
        ["..", ".%2e", ".%2E", "%2e.", "%2E.", "%2e%2e", "%2E%2E", "%2e%2E", "%2E%2e"]
    )


@pytest.mark.parametrize(
    "path",
    [
        "/nope/v1/messages",
        "/%61nthropic/v1/messages",  # the provider name is compared raw
        "/Anthropic/v1/messages",
        "/anthropic%2Fv1/messages",
        "/mock/v1/chat/completions",
        "/v1/messages",
    ],
)
def test_an_unknown_prefix_gets_the_gateways_own_404(path):
    gateway, fetch = make_gateway(ok_upstream, ENV)
    response, _ = send(gateway, "POST", path, CLIENT_HEADERS, BODY)
    assert_flavor(response, "openai", 404)
    assert "Unknown route" in json.loads(response.body)["error"]["message"]
    assert fetch.requests == []


def test_the_gateways_own_routes_are_unchanged():
    gateway, fetch = make_gateway(ok_upstream, ENV)
    assert send(gateway, "GET", "/healthz")[0].status == 200
    assert send(gateway, "GET", "/v1/models")[0].status == 200
    assert fetch.requests == []


@pytest.mark.parametrize(
    ("kind", "path", "variable"),
    [
        ("openai", "/openai/v1/chat/completions", "OPENAI_API_KEY"),
        ("anthropic", "/anthropic/v1/messages", "ANTHROPIC_API_KEY"),
        ("gemini", "/gemini/v1beta/models/gemini-2.5-flash:generateContent", "GEMINI_API_KEY"),
        ("openai", "/groq/v1/chat/completions", "GROQ_API_KEY"),
    ],
)
def test_a_missing_key_is_503_in_the_provider_shape_naming_the_variable(kind, path, variable):
    gateway, fetch = make_gateway(ok_upstream, EDGERELAY_CONFIG=NAMED)
    response, _ = send(gateway, "POST", path, CLIENT_HEADERS, BODY)
    assert variable in assert_flavor(response, kind, 503)
    assert fetch.requests == []


def test_a_provider_that_needs_no_key_still_never_gets_the_clients():
    gateway, fetch = make_gateway(ok_upstream, ENV)
    response, _ = send(gateway, "POST", "/local/v1/messages", CLIENT_HEADERS, BODY)
    assert response.status == 200
    (sent,) = fetch.requests
    assert sent.url == "http://127.0.0.1:9999/v1/messages"
    assert "x-api-key" not in sent.headers and "authorization" not in sent.headers
    assert SECRET not in json.dumps(sent.headers)


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_upstream_errors_reach_the_sdk_unchanged(kind):
    body = b'{"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}'
    headers = {"content-type": "application/json", "retry-after": "7", "set-cookie": "a=b"}
    gateway, fetch = make_gateway(lambda r: FakeResponse(429, headers, [body[:10], body[10:]]), ENV)
    target = next(p for k, _, m, p, _ in ALLOWED if k == kind and m == "POST")
    response, chunks = send(gateway, "POST", target, CLIENT_HEADERS, BODY)
    assert response.status == 429
    assert b"".join(chunks) == body
    upstream_headers = [("content-type", "application/json"), ("retry-after", "7")]
    assert response.headers[:2] == upstream_headers
    # Then what the gateway adds: the attempts made (a 429 is retried) and who answered.
    model = target.rpartition("/models/")[2].partition(":")[0] if kind == "gemini" else "m"
    assert response.headers[2:] == [
        ("x-edgerelay-attempts", "3"),
        ("x-edgerelay-target", f"{kind}/{model}"),
    ]
    assert fetch.responses[0].closed


def test_unreachable_upstream_is_502_and_a_timeout_504_in_the_provider_shape():
    def down(request):
        raise FetchError("connection failed (Connection refused)")

    gateway, _ = make_gateway(down, ENV)
    response, _ = send(gateway, "POST", "/anthropic/v1/messages", {}, BODY)
    assert "anthropic" in assert_flavor(response, "anthropic", 502)

    def slow(request):
        raise FetchError("timed out", timeout=True)

    gateway, _ = make_gateway(slow, ENV)
    target = "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
    response, _ = send(gateway, "POST", target, {}, BODY)
    assert_flavor(response, "gemini", 504)
    assert json.loads(response.body)["error"]["status"] == "DEADLINE_EXCEEDED"


def test_an_oversized_body_is_413_in_the_provider_shape_without_upstream_call():
    gateway, fetch = make_gateway(ok_upstream, {**ENV, "EDGERELAY_MAX_BODY_BYTES": "10"})
    response, _ = send(gateway, "POST", "/anthropic/v1/messages", {}, BODY)
    assert "EDGERELAY_MAX_BODY_BYTES" in assert_flavor(response, "anthropic", 413)
    assert json.loads(response.body)["error"]["type"] == "request_too_large"
    assert fetch.requests == []


def test_a_bug_is_a_clean_500_in_the_provider_shape():
    def broken(request):
        raise ZeroDivisionError("boom")

    gateway, _ = make_gateway(broken, ENV)
    response, _ = send(gateway, "POST", "/anthropic/v1/messages", {}, BODY)
    assert_flavor(response, "anthropic", 500)
    assert b"boom" not in response.body


def test_a_streamed_answer_is_relayed_unchanged_event_by_event():
    frames = [
        b"event: message_start\n",
        b'data: {"a":1}\n\n',
        b"event: ping\ndata: {}\n\n",
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ]
    sse = {"content-type": "text/event-stream", "request-id": "req_1"}
    gateway, fetch = make_gateway(lambda r: FakeResponse(200, sse, frames), ENV)
    response, chunks = send(gateway, "POST", "/anthropic/v1/messages", {}, BODY)
    # The same bytes; each chunk goes out as soon as the event in it is whole.
    assert b"".join(chunks) == b"".join(frames)
    assert chunks == [frames[0] + frames[1], *frames[2:]]
    assert fetch.responses[0].closed
    assert response.headers == [
        ("content-type", "text/event-stream"),
        ("request-id", "req_1"),
        ("x-edgerelay-attempts", "1"),
        ("x-edgerelay-target", "anthropic/m"),
    ]


# Property: whatever path is asked for, anything that does reach the upstream is an allowlisted
# (method, path), sent exactly as matched: no escapes, no dot or empty segments, no backslash.
# Examples start from allowed paths and get tricky pieces inserted or characters escaped.
PIECES = ["/", "//", ".", "..", "/../", "/./", "%2e", "%2E", "%2f", "%2F", "%5c", "\\"]
PIECES += ["%00", "%25", "%3A", "@", ":", ";", "files", "/batches", ":batchGenerateContent"]
BASES = {
    "openai": "https://oa.test/v1/",
    "anthropic": "https://an.test/",
    "gemini": "https://ge.test/",
}
STARTS = sorted(
    {(k, m, p.partition("?")[0]) for k, _, m, p, _ in ALLOWED if p.startswith(f"/{k}/")}
)


@st.composite
def asked(draw):
    kind, method, path = draw(st.sampled_from(STARTS))
    method = draw(st.sampled_from([method, method, "GET", "POST", "DELETE"]))
    rest = path[len(kind) + 2 :]
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(rest)))
        if draw(st.booleans()):
            rest = rest[:at] + draw(st.sampled_from(PIECES)) + rest[at:]
        elif at < len(rest):  # escape one character, in either case
            escape = f"%{ord(rest[at]):02X}"
            rest = rest[:at] + draw(st.sampled_from([escape, escape.lower()])) + rest[at + 1 :]
    return kind, method, f"/{kind}/{rest}"


@settings(max_examples=400, deadline=None)
@given(asked())
def test_whatever_is_asked_only_allowlisted_plain_paths_reach_the_upstream(case):
    kind, method, path = case
    gateway, fetch = make_gateway(ok_upstream, ENV)
    response = drive(gateway.handle(Request(method, path, "", {}, BODY)))
    drive(response.aclose())
    if not fetch.requests:
        assert response.status in (400, 404)
        return
    (sent,) = fetch.requests
    assert response.status == 200
    assert sent.url.startswith(BASES[kind])
    relative = sent.url[len(BASES[kind]) :]
    assert all(s and s not in (".", "..") for s in relative.split("/"))
    assert "%" not in relative and "\\" not in relative
    assert allowed(kind, method, relative)
