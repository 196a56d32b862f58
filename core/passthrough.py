"""Native passthrough routes: each provider's own SDK talks to the gateway as if it were the
provider, and the gateway relays the bytes with its own key injected.

``/openai/v1/<path>`` goes to ``OPENAI_BASE_URL/<path>``, ``/anthropic/<path>`` to
``ANTHROPIC_BASE_URL/<path>`` and ``/gemini/<path>`` to ``GEMINI_BASE_URL/<path>``; a named
provider from ``EDGERELAY_CONFIG`` gets the same under its own name, shaped by its ``kind``.

The gateway's key must reach only model endpoints, never account, file, batch, fine-tuning or
admin ones. So the route is an allowlist of (method, exact path template), and it is matched
against the path exactly as it will be sent: the path is decoded and checked segment by segment,
anything an HTTP client or upstream could reinterpret (dot segments, encoded slashes,
backslashes, empty segments) is refused, and the upstream gets the validated canonical path.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, NamedTuple

from . import registry, safejson
from .config import Config, ProviderConfig
from .errors import Flavor, GatewayError, not_configured
from .fetch import FetchRequest
from .headers import filter_response_headers
from .http import Request, Response
from .observer import Protocol, StreamHook
from .responses import error_response, passthrough, too_large, unexpected_status
from .sending import Bounded, Seams, Unanswered, attempt_headers, send

if TYPE_CHECKING:
    from .identity.policy import Policy


class _Allowlists(Mapping[str, tuple[tuple[str, str], ...]]):
    """Each kind's passthrough allowlist, as the registry declares it: (method, path template)
    relative to the provider's base URL. OpenAI's base URL already ends in /v1 (as
    OPENAI_BASE_URL does), Anthropic's and Gemini's carry no version. Kinds without a
    passthrough route (the mock) are not in it."""

    def __getitem__(self, kind: str) -> tuple[tuple[str, str], ...]:
        routes = registry.spec(kind).allowlist
        if not routes:
            raise KeyError(kind)
        return routes

    def __iter__(self) -> Iterator[str]:
        return (s.kind for s in registry.specs() if s.allowlist)

    def __len__(self) -> int:
        return sum(1 for _ in self)


ALLOWLIST = _Allowlists()

# A placeholder matches one whole path segment (or the part before a ':verb' suffix): a letter
# or digit, then only these characters, so never '/' and never a dot segment. OpenAI model ids
# need ':' and '@' (``ft:gpt-4o-mini:org:name:id``). A Gemini model is followed by ':verb' in
# the same segment, so ':' is excluded there: ``x:batchGenerateContent:countTokens`` must not
# pass as model ``x:batchGenerateContent``.
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
PLACEHOLDERS = {
    "{id}": _ALNUM | frozenset("._:@-"),
    "{model}": _ALNUM | frozenset("._-"),
}

# Request headers the upstream may see, explicitly: what the request means and the provider
# version/beta switches the SDKs send. Never credentials (authorization, x-api-key,
# x-goog-api-key, cookie), never the client's organisation or project (the gateway's account is
# the one used), never hop-by-hop or transport headers (host, content-length, accept-encoding:
# the transport sets and decodes them), never x-forwarded-*. SDK telemetry (user-agent,
# x-stainless-*) describes the client's machine and serves no request, so it stays behind too.
# Each kind adds its own (registry: forwarded_headers).
_COMMON_HEADERS = frozenset({"content-type", "content-encoding", "accept", "idempotency-key"})

# Query parameters that carry a credential: Gemini clients may send the key as ?key=. The
# gateway's own key travels in a header instead.
_SECRET_QUERY_PARAMS = frozenset({"key"})


class Native(NamedTuple):
    """A request addressed to a provider's passthrough route (not yet checked)."""

    provider: ProviderConfig
    rest: str  # the raw path after ``/<name>/``, still percent-encoded, unchecked

    @property
    def flavor(self) -> Flavor:
        return registry.spec(self.provider.kind).error_shape


def allowed(kind: str, method: str, path: str) -> bool:
    """Whether ``method path`` (decoded, relative to the base URL) is on ``kind``'s allowlist."""
    segments = path.split("/")
    return any(
        method == allowed_method and _matches(template.split("/"), segments)
        for allowed_method, template in ALLOWLIST[kind]
    )


def _matches(template: list[str], segments: list[str]) -> bool:
    if len(template) != len(segments):
        return False
    for pattern, segment in zip(template, segments, strict=True):
        placeholder, brace, suffix = pattern.partition("}")
        if not brace:  # a literal segment
            if segment != pattern:
                return False
            continue
        # "{model}:verb": the placeholder, then a literal suffix.
        charset = PLACEHOLDERS[placeholder + brace]
        value = segment[: len(segment) - len(suffix)]
        if not segment.endswith(suffix) or not value or value[0] not in _ALNUM:
            return False
        if not all(c in charset for c in value):
            return False
    return True


def find(path: str, config: Config) -> Native | None:
    """The provider whose passthrough route ``path`` names, or None (not a passthrough path).

    The provider name is compared raw: ``/%61nthropic/…`` names no provider and gets the
    gateway's ordinary 404."""
    if not path.startswith("/"):
        return None
    name, _, rest = path[1:].partition("/")
    provider = config.providers.get(name)
    if provider is None or not registry.spec(provider.kind).allowlist:
        return None
    return Native(provider, rest)


def build_request(request: Request, native: Native, config: Config) -> FetchRequest:
    """The upstream request for an allowed passthrough call; raises ``GatewayError`` otherwise.

    Checks run before anything is sent: a malformed path is 400, a path or method outside the
    allowlist 404, an oversized body 413, a missing key 503."""
    provider = native.provider
    path = canonical_path(native.rest)
    prefix = registry.spec(provider.kind).sdk_prefix
    if not (
        path.startswith(prefix) and allowed(provider.kind, request.method, path[len(prefix) :])
    ):
        raise GatewayError(
            404,
            f"{request.method} {request.path} is not an allowed route of the {provider.name} "
            "passthrough.",
            code="route_not_allowed",
        )
    if len(request.body) > config.max_body_bytes:
        raise too_large(config.max_body_bytes)
    if provider.key_required and not provider.api_key:
        raise not_configured(provider.name, provider.api_key_env)
    url = provider.base_url + "/" + path[len(prefix) :]
    query = forwarded_query(request.query)
    if query:
        url += "?" + query
    headers = forwarded_headers(request.headers, provider)
    body: bytes | AsyncIterable[bytes] | None = request.body
    if request.body_stream is not None:
        # The upload goes on as it arrives, framed as the client framed it.
        body = request.body_stream
        length = request.headers.get("content-length")
        if length is not None and length.isdigit():
            headers["content-length"] = length
    # The timeouts are set per attempt (core.sending.timed).
    return FetchRequest(
        request.method, url, headers, body if request.method != "GET" else None, pool=provider.name
    )


def streams_upload(request: Request, config: Config) -> bool:
    """Whether an adapter may hand this request's body on as it arrives (``body_stream``)
    instead of reading it first: an allowed POST to a passthrough route."""
    if request.method != "POST":
        return False
    native = find(request.path, config)
    if native is None:
        return False
    prefix = registry.spec(native.provider.kind).sdk_prefix
    try:
        path = canonical_path(native.rest)
    except GatewayError:
        return False
    return path.startswith(prefix) and allowed(native.provider.kind, "POST", path[len(prefix) :])


async def relay(
    request: Request,
    config: Config,
    seams: Seams,
    policy: Policy | None = None,
    hooks: Callable[[Protocol], list[StreamHook]] = lambda _: [],
    deadline: float | None = None,
) -> Response | None:
    """Answer a passthrough request, or None when ``request`` is not one. With ``policy``, the
    caller's policy is applied first (``identity.enforce``).

    A request whose body the gateway holds (read whole) is retried as the retry policy says
    (``core.sending``), before the client gets a byte; an upload streamed on as it arrives
    cannot be sent twice, so it is not. The answer kept is the upstream's own, plus
    ``x-edgerelay-attempts`` and ``x-edgerelay-target`` (``passthrough_target``), errors
    included.

    The upstream's answer, errors included, reaches the client unchanged (status, allowed
    headers, body bytes streamed), so the SDK sees exactly what the provider said. Errors the
    gateway makes itself are rendered in the provider's own shape; so is the terminal error
    event that ends a model stream that breaks off (``core.observer``)."""
    native = find(request.path, config)
    if native is None:
        return None
    try:
        if policy is not None:
            from .identity.enforce import enforce_passthrough  # it imports this module

            await enforce_passthrough(request, native, policy, config)
        outbound = build_request(request, native, config)
        retry = config.retry
        if request.body_stream is not None:
            retry = retry._replace(retries=0)  # its bytes are gone once sent
        name = native.provider.name
        target = passthrough_target(request, native)
        try:
            sent = await send(outbound, name, retry, config.timeouts, seams, deadline)
        except Unanswered as unanswered:
            tagged = attempt_headers(unanswered.attempts, target)
            unanswered.headers = (*unanswered.headers, *tagged)
            raise
        tags = attempt_headers(sent.attempts, target)
        upstream = sent.upstream
        if upstream.status < 200 or 300 <= upstream.status < 400:
            await upstream.aclose()
            odd = unexpected_status(native.provider.name, upstream.status)
            odd.headers = tags
            raise odd
    except GatewayError as error:
        return error_response(error, native.flavor)
    except Exception:  # a bug of ours: the SDK still gets its own error shape, the log the rest
        import logging  # imported here, as in gateway.py: slow to import, and this path is rare

        logging.getLogger("edgerelay").exception(
            "unhandled error on %s passthrough %s", native.provider.name, request.method
        )
        return error_response(GatewayError(500, "Internal gateway error."), native.flavor)
    if sent.error_body is not None:  # the upstream's error, unchanged: what was read, then the rest
        body = sent.error_body
        headers = [*filter_response_headers(upstream.headers), *tags]
        return Response(upstream.status, headers, stream=body.stream(), upstream=body)
    protocol = stream_protocol(native, upstream.status, upstream.headers)
    stream_hooks = hooks(protocol) if protocol is not None else ()
    chunks = Bounded(upstream, sent.stop, seams.clock).aiter_bytes()
    response = passthrough(upstream, protocol, stream_hooks, config.max_event_bytes, chunks)
    response.headers.extend(tags)
    return response


# A held body larger than this is not parsed only to name the model in x-edgerelay-target: a
# base64 image upload would cost a full JSON parse (CPU the Worker is billed for) for a header.
MODEL_SCAN_LIMIT = 1024 * 1024


def passthrough_target(request: Request, native: Native) -> str:
    """What ``x-edgerelay-target`` says on a passthrough answer: ``provider/model`` with the
    model the request names (Gemini: in the path; others: the body's ``model``), or the provider
    alone when the gateway has not read one (a GET, a streamed upload, a body past
    ``MODEL_SCAN_LIMIT``)."""
    name = native.provider.name
    model = None
    if native.provider.kind == "gemini":
        last = native.rest.rpartition("/")[2]
        if ":" in last and native.rest.partition("/models/")[1]:
            model = _percent_decode(last.partition(":")[0])
    elif request.body and request.body_stream is None and len(request.body) <= MODEL_SCAN_LIMIT:
        try:
            parsed = safejson.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            parsed = None
        named = parsed.get("model") if isinstance(parsed, dict) else None
        model = named if isinstance(named, str) else None
    if not model or not _printable(model):
        return name
    return f"{name}/{model}"


def stream_protocol(native: Native, status: int, headers: Mapping[str, str]) -> Protocol | None:
    """The stream protocol of a successful model stream on a passthrough route (what its end
    marker and its terminal error look like), or None for any other answer."""
    if status != 200:
        return None
    content_type = headers.get("content-type", "").lower()
    sse = content_type.startswith("text/event-stream")
    kind = native.provider.kind
    path = canonical_path(native.rest)  # checked already: what the upstream was asked
    if kind == "openai":
        if not sse:
            return None
        if path.endswith("/chat/completions"):
            return "chat"
        return "responses" if path.endswith("/responses") else None
    if kind == "anthropic":
        return "anthropic" if sse and path.endswith("/messages") else None
    if kind == "gemini" and path.endswith(":streamGenerateContent"):
        if sse:
            return "gemini"
        return "gemini-json" if content_type.startswith("application/json") else None
    return None


def canonical_path(raw: str) -> str:
    """The decoded path, if every segment is safe to send as is; 400 otherwise.

    Each segment is percent-decoded once and must then be a plain printable-ASCII name: not
    empty (``//``), not ``.`` or ``..`` in any encoding, without ``/`` or ``\\`` (encoded slash
    or backslash, which servers and clients may treat as a separator). What is matched against
    the allowlist is exactly what the upstream receives."""
    if not raw:
        return ""
    segments = []
    for segment in raw.split("/"):
        if not segment:
            raise _bad_path("it has an empty segment ('//' or a trailing '/')")
        decoded = _percent_decode(segment)
        if decoded is None or not _printable(decoded):
            raise _bad_path("it has a malformed escape or a control or non-ASCII character")
        if "/" in decoded or "\\" in decoded:
            raise _bad_path("it has an encoded slash or a backslash")
        if decoded in (".", ".."):
            raise _bad_path("it has a dot segment")
        segments.append(decoded)
    return "/".join(segments)


def forwarded_query(raw: str) -> str:
    """The client's query string, raw, minus any credential parameter (``key``)."""
    if not raw:
        return ""
    if not _printable(raw) or "#" in raw:
        # Never echo the query: it may hold a key.
        raise GatewayError(400, "The query string has a character that cannot be forwarded.")
    kept = []
    for param in raw.split("&"):
        name = _percent_decode(param.partition("=")[0].replace("+", " "))
        if name is None:
            raise GatewayError(400, "The query string has a malformed percent escape.")
        if name.lower() not in _SECRET_QUERY_PARAMS:
            kept.append(param)
    return "&".join(kept)


def forwarded_headers(headers: Mapping[str, str], provider: ProviderConfig) -> dict[str, str]:
    """The client's allowlisted headers plus the gateway's key in the provider's header."""
    own = registry.spec(provider.kind).forwarded_headers
    out = {
        name.lower(): value
        for name, value in headers.items()
        if name.lower() in _COMMON_HEADERS or name.lower() in own
    }
    out.update(registry.key_headers(provider))
    return out


def _percent_decode(text: str) -> str | None:
    """Decode %XX escapes (latin-1, so one byte is one character); None if one is malformed."""
    if "%" not in text:
        return text
    pieces = text.split("%")
    out = [pieces[0]]
    for piece in pieces[1:]:
        hexdigits = piece[:2]
        if len(hexdigits) < 2 or not all(c in "0123456789abcdefABCDEF" for c in hexdigits):
            return None
        out.append(chr(int(hexdigits, 16)) + piece[2:])
    return "".join(out)


def _printable(text: str) -> bool:
    return all("!" <= c <= "~" for c in text)


def _bad_path(reason: str) -> GatewayError:
    return GatewayError(400, f"The request path cannot be forwarded: {reason}.", code="bad_path")
