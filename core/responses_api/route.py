"""``POST /v1/responses``: the gateway's handler, over the same providers as chat.

OpenAI-compatible upstreams get the request as sent (only the model renamed, the output limit
capped by the caller's policy) and their answer is passed on byte for byte, unless the provider
says ``responses = "translate"`` (a server with Chat Completions only). Every other case goes
through chat: the request becomes a chat request, which the gateway sends exactly as it sends
``/v1/chat/completions`` (``core.attempts``: the policy and the key checked per target, the
provider's pool, retries and the model's fallback chain before the first byte, the per-model
reasoning table in the provider's translation), and its chat answer or chunk stream
becomes the ``response`` or the Responses events. Identity, the body-size and value limits and
the stream observer are the gateway's own, in the Responses error shape.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import NamedTuple

from .. import attempts, registry
from ..chains import Chain
from ..chat import ChatRequest
from ..errors import GatewayError, bad_request, not_configured, stream_error_frame
from ..fetch import FetchError, FetchRequest
from ..gateway import Gateway
from ..http import Request, Response
from ..identity.enforce import forbidden_model, route_names
from ..identity.policy import Policy, cap_fields
from ..observer import event_too_large
from ..providers import openai
from ..responses import (
    EVENT_STREAM,
    JSON,
    is_event_stream,
    observed,
    passthrough,
    too_large,
    unexpected_status,
)
from ..routing import Route, route_model
from ..safejson import dumps
from ..sending import Bounded, MovedOn, Unanswered, attempt_headers, send
from ..sse import EventTooLarge
from . import answer, store
from .events import ResponsesStream
from .request import (
    ResponsesRequest,
    input_items,
    parse_request,
    responses_error,
    to_chat,
    too_many_items,
)


async def handle(gateway: Gateway, request: Request, deadline: float | None = None) -> Response:
    """Answer one ``POST /v1/responses`` (the caller is already identified); errors are raised
    as ``GatewayError`` naming the Responses field, for the gateway to render. The chat request
    it becomes goes through the same attempt loop as /v1/chat/completions (retries, the
    model's fallback chain, ``deadline``); OpenAI's own Responses endpoint is retried too."""
    config = gateway.config
    if len(request.body) > config.max_body_bytes:
        raise too_large(config.max_body_bytes)
    parsed = parse_request(request.body, config.max_messages, config.max_request_values)
    if request.log is not None:
        request.log.model = parsed.model
    route = route_model(parsed.model, config)
    policy = request.identity.policy if request.identity is not None else None
    if policy is not None:
        _check_policy(parsed, route, policy, gateway)
    provider = route.provider
    if provider.key_required and not provider.api_key:
        raise not_configured(provider.name, provider.api_key_env)
    chain = attempts.chain_for(parsed.model, config)
    if _native(route):
        stop = gateway.clock() + chain.timeouts.total
        deadline = stop if deadline is None else min(deadline, stop)  # one for the whole chain

        async def native_first(sent: ResponsesRequest = parsed, cached: bool = True) -> Response:
            passed = await _pass_through_chain(gateway, sent, chain, policy, deadline)
            if isinstance(passed, Response):
                return passed
            rest, tried = passed  # the rest of the chain goes through chat
            through_chat = await _chat_side(gateway, request, sent, policy, deadline, cached)
            return await through_chat(_Left(rest, tried))

        if gateway.cache is not None:
            cached = functools.partial(_native_cached, gateway, request, parsed, policy)
            return await _limited(gateway, request, parsed, route, lambda: cached(native_first))
        return await _limited(gateway, request, parsed, route, native_first)
    through_chat = await _chat_side(gateway, request, parsed, policy, deadline)
    return await _limited(gateway, request, parsed, route, lambda: through_chat(_Left(chain, 0)))


async def _native_cached(
    gateway: Gateway,
    request: Request,
    parsed: ResponsesRequest,
    policy: Policy | None,
    native_first: Callable[[ResponsesRequest, bool], Awaitable[Response]],
) -> Response:
    """A request for OpenAI's own /responses through the response cache (core.cache): keyed on
    the body as the policy caps it, sent upstream streamed whatever the client asked (one call
    serves streaming and JSON clients alike), watched for its end so only a whole answer is
    stored. A fallback target reached through chat answers the flight without the chat cache:
    one entry, under this request's key."""
    assert gateway.cache is not None
    body = parsed.body
    if policy is not None and policy.output_tokens is not None:
        body = dict(body)
        cap_fields(body, ("max_output_tokens",), policy, "max_output_tokens")

    async def call(sent_body: dict) -> Response:
        streamed = sent_body.get("stream") is True
        # A request the cache leaves alone goes upstream as sent (see _pass_through).
        raw = parsed.raw if sent_body is parsed.body else dumps(sent_body)
        sent = parsed._replace(body=sent_body, stream=streamed, raw=raw)
        response = await native_first(sent, False)
        if response.stream is not None and is_event_stream(response.headers):
            observed(response, "responses", (), gateway.config.max_event_bytes)
        return response

    return await gateway.cache.responses(request, body, parsed.model, parsed.stream, call)


async def _chat_side(
    gateway: Gateway,
    request: Request,
    parsed: ResponsesRequest,
    policy: Policy | None,
    deadline: float | None,
    cached: bool = True,
) -> Callable[[_Left], Awaitable[Response]]:
    """The request as a chat request, checked (the conversation it continues looked up, the
    message count): what answers it through chat, given the targets left (through the
    response cache when there is one, unless ``cached`` is false)."""
    config = gateway.config
    client = request.identity.client_id if request.identity is not None else None
    namespace = store.namespace_of(request.headers, client)
    conversation = await store.resolve(
        gateway.response_store, namespace, parsed.previous_response_id, input_items(parsed.body)
    )
    chat_body, where = to_chat(parsed, conversation)
    if len(chat_body["messages"]) > config.max_messages:
        # A chain of previous_response_id can grow past what one request may carry.
        count = len(chat_body["messages"])
        raise too_many_items(count, config.max_messages, "EDGERELAY_MAX_MESSAGES")
    raw = dumps(chat_body)
    chat = ChatRequest(chat_body, parsed.model, parsed.stream, parsed.stream, raw, {})
    head = answer.skeleton(parsed, "resp_" + gateway.new_id(), int(gateway.clock()))
    keep = _Keeper(gateway, namespace, conversation, parsed.store)

    async def through_chat(left: _Left) -> Response:
        try:
            return await _through_chat(
                gateway, request, chat, policy, head, keep, deadline, left, cached
            )
        except GatewayError as error:
            raise responses_error(error, where) from None

    return through_chat


async def _limited(
    gateway: Gateway,
    request: Request,
    parsed: ResponsesRequest,
    route: Route,
    produce: Callable[[], Awaitable[Response]],
) -> Response:
    """``produce()``'s answer, counted against the caller's limits when any apply: admitted
    here, once the request is checked (a request refused as invalid is not counted, as on
    /v1/chat/completions) and before any upstream call."""

    async def observed_answer() -> Response:
        # Observed before the account watches it: its usage is read by a hook of the same
        # observer, with no second pass over the bytes.
        response = await produce()
        if response.stream is not None and is_event_stream(response.headers):
            observed(
                response, "responses", gateway.hooks("responses"), gateway.config.max_event_bytes
            )
        return response

    limits = gateway.limits
    if limits is not None:
        account = await limits.admit_responses(request, parsed.body, route, parsed.stream)
        if account is not None:
            return await limits.around(account, observed_answer)
    return await observed_answer()


def _check_policy(parsed: ResponsesRequest, route: Route, policy: Policy, gateway: Gateway) -> None:
    """The caller's model allowlist (403) and message count (400), before anything is looked
    up or sent; the output cap is applied where the request is built."""
    if not policy.allows_model(*route_names(route, gateway.config)):
        raise forbidden_model(parsed.model)
    items = parsed.body.get("input")
    count = len(items) if isinstance(items, list) else 1
    if policy.max_messages is not None and count > policy.max_messages:
        raise bad_request(
            f"`input` has more than the {policy.max_messages} items allowed.",
            param="input",
            code="too_many_messages",
        )


class _Keeper:
    """Stores a finished response when the request asked for it (``store``, default true)."""

    def __init__(self, gateway: Gateway, namespace: str, conversation: list, wanted: bool):
        self.gateway, self.namespace = gateway, namespace
        self.conversation, self.wanted = conversation, wanted

    async def __call__(self, response: dict) -> None:
        if self.wanted:
            ttl = self.gateway.config.responses_ttl
            await store.keep(
                self.gateway.response_store, self.namespace, ttl, self.conversation, response
            )


class _Left(NamedTuple):
    """The targets of the model's chain the chat attempt loop is to try, and the attempts made
    on the ones before them (OpenAI's own /responses endpoint)."""

    chain: Chain
    tried: int


def _native(route: Route) -> bool:
    """Whether ``route`` takes the Responses request as it is (OpenAI's own /responses)."""
    return route.kind == "openai" and route.provider.responses != "translate"


async def _pass_through_chain(
    gateway: Gateway,
    parsed: ResponsesRequest,
    chain: Chain,
    policy: Policy | None,
    deadline: float,
) -> Response | tuple[Chain, int]:
    """The leading targets of ``chain`` that speak the Responses API, each sent the request as
    it is (retried as the chain's policy says): the first answer kept, or the rest of the chain
    (from the first target that needs chat) and the attempts made, when each of them was left
    for the next target. A target the caller's policy refuses, or without its key, is skipped
    while another remains."""
    targets = chain.targets
    tried = 0
    for index, target in enumerate(targets):
        route = route_model(target, gateway.config)
        if not _native(route):
            return chain._replace(targets=targets[index:]), tried
        has_next = index + 1 < len(targets)
        if index:  # the first target was checked before anything else
            refusal = _refusal(route, policy, gateway)
            if refusal is not None:
                if has_next:
                    continue
                raise refusal
        try:
            return await _pass_through(
                gateway, parsed, route, chain, policy, deadline, tried, has_next
            )
        except MovedOn as moved:
            tried += moved.attempts
    raise AssertionError("the last target never moves on")  # has_next is False there


def _refusal(route: Route, policy: Policy | None, gateway: Gateway) -> GatewayError | None:
    if policy is not None and not policy.allows_model(*route_names(route, gateway.config)):
        return forbidden_model(route.model)
    provider = route.provider
    if provider.key_required and not provider.api_key:
        return not_configured(provider.name, provider.api_key_env)
    return None


async def _pass_through(
    gateway: Gateway,
    parsed: ResponsesRequest,
    route: Route,
    chain: Chain,
    policy: Policy | None,
    deadline: float,
    tried: int,
    has_next: bool,
) -> Response:
    body = parsed.body
    changed = route.model != parsed.model
    if changed:
        body = {**body, "model": route.model}
    if policy is not None and policy.output_tokens is not None:
        body = dict(body)
        changed = cap_fields(body, ("max_output_tokens",), policy, "max_output_tokens") or changed
    raw = dumps(body) if changed else None
    headers = {"content-type": "application/json"}
    headers["accept"] = "text/event-stream" if parsed.stream else "application/json"
    provider = route.provider
    headers.update(registry.key_headers(provider))
    outbound = FetchRequest(
        "POST",
        provider.base_url + "/responses",
        headers,
        raw if raw is not None else parsed.raw,
        pool=provider.name,
    )
    seams = gateway.seams()
    target = f"{provider.name}/{route.model}"
    try:
        sent = await send(
            outbound, provider.name, chain.policy, chain.timeouts, seams, deadline, has_next
        )
    except Unanswered as unanswered:
        tagged = attempt_headers(tried + unanswered.attempts, target)
        unanswered.headers = (*unanswered.headers, *tagged)
        raise
    upstream = sent.upstream
    tags = attempt_headers(tried + sent.attempts, target)
    if sent.error_body is not None:
        await upstream.aclose()
        error = attempts.upstream_error(upstream, sent.error_body.excerpt, openai.translate_error)
        error.headers = (*error.headers, *tags)
        raise error
    if upstream.status < 200 or 300 <= upstream.status < 400:
        await upstream.aclose()
        raise unexpected_status(provider.name, upstream.status)
    response = passthrough(upstream, body=Bounded(upstream, sent.stop, seams.clock).aiter_bytes())
    response.headers.extend(tags)
    return response


async def _through_chat(
    gateway: Gateway,
    request: Request,
    chat: ChatRequest,
    policy: Policy | None,
    head: dict,
    keep: _Keeper,
    deadline: float | None,
    left: _Left,
    cached: bool = True,
) -> Response:
    """The chat request through the attempt loop of /v1/chat/completions (its retries and the
    targets ``left`` of the model's fallback chain, before the client gets a byte), or through
    the response cache in front of it (when ``cached``); the chat answer (or chunk stream) it
    gives, in OpenAI's chat shape whichever target answered, converted."""
    if gateway.cache is not None and cached:
        return await _through_cache(gateway, request, chat, policy, head, keep, deadline, left)
    answered = await attempts.answer(chat, gateway.config, gateway.seams(), deadline, policy, *left)
    headers = [h for h in answered.headers if h[0] != "content-type"]
    if chat.stream:
        response = Response(200, [EVENT_STREAM, *headers])
        response.stream = _events(_chat_chunks(answered, response), head, gateway, keep, response)
        response.upstream = _Beneath(answered)
        return response
    target = dict(answered.headers).get(attempts.TARGET_HEADER, "")
    name = target.partition("/")[0] or "upstream"
    body = await _whole(answered, gateway.config.max_response_bytes, name)
    result = answer.from_completion(body, head, gateway.new_id, name)
    await keep(result)
    return Response(200, [JSON, *headers], dumps(result))


async def _through_cache(
    gateway: Gateway,
    request: Request,
    chat: ChatRequest,
    policy: Policy | None,
    head: dict,
    keep: _Keeper,
    deadline: float | None,
    left: _Left,
) -> Response:
    """The chat request through the response cache (core.cache): its chat answer, stored or
    fresh, converted as above; the cache's headers go on. Each answer is a response of its own
    (its own id, stored when asked), so previous_response_id works after a hit too."""
    assert gateway.cache is not None
    # Checked before the cache may answer, as on /v1/chat/completions.
    chat = attempts.admit(chat, gateway.config, policy)

    async def call(sent: ChatRequest) -> Response:
        seams = gateway.seams()
        response = await attempts.answer(sent, gateway.config, seams, deadline, policy, *left)
        if response.stream is not None and is_event_stream(response.headers):
            # Watched for its end (only a complete answer is stored); no hooks: the Responses
            # stream the client gets is the one they watch.
            observed(response, "chat", (), gateway.config.max_event_bytes)
        return response

    answered = await gateway.cache.chat(request, chat, call, "/v1/responses")
    kept = [h for h in answered.headers if not h[0].startswith("content-")]
    if chat.stream and is_event_stream(answered.headers):
        response = Response(200, [EVENT_STREAM, *kept])
        response.stream = _events(_closing(answered), head, gateway, keep, response)
        response.upstream = _Beneath(answered)
        return response
    body = answered.body if answered.stream is None else await _joined(answered)
    target = dict(answered.headers).get(attempts.TARGET_HEADER, "")
    result = answer.from_completion(
        body, head, gateway.new_id, target.partition("/")[0] or "upstream"
    )
    await keep(result)
    return Response(200, [JSON, *kept], dumps(result))


class _Beneath:
    """``Response.upstream`` of a converted stream: closing the response closes the chat
    answer beneath it, also when the client left before the first byte (the converting
    generator then never started, so its own ``finally`` never runs)."""

    __slots__ = ("_answered",)
    native_body = None  # the client gets converted bytes, never the upstream's own
    status = 200
    headers: Mapping[str, str] = {}

    def __init__(self, answered: Response) -> None:
        self._answered = answered

    async def aclose(self) -> None:
        if self._answered.stream is not None:  # else the generator closed it already
            await self._answered.aclose()


async def _closing(answered: Response) -> AsyncGenerator[bytes, None]:
    """The chat answer's bytes: its stream, or the body a hit replays in one piece."""
    try:
        if answered.stream is None:
            yield answered.body
            return
        async for chunk in answered.stream:
            yield chunk
    finally:
        await answered.aclose()


async def _joined(answered: Response) -> bytes:
    return b"".join([chunk async for chunk in _closing(answered)])


async def _whole(answered: Response, limit: int, name: str) -> bytes:
    """A chat answer's body: already read (translated), or relayed (an OpenAI-compatible
    upstream's own bytes), read here up to ``limit``."""
    if answered.stream is None:
        return answered.body
    try:
        return await attempts.read_capped(answered.stream, limit, name)
    except FetchError as exc:
        raise GatewayError(502, f"The {name} upstream's answer broke off: {exc}") from None
    finally:
        await answered.aclose()


async def _chat_chunks(answered: Response, response: Response) -> AsyncGenerator[bytes, None]:
    """The chat answer's chunks as they come (translated, or an OpenAI-compatible server's
    own); a break is an error chunk, as the translators end a broken stream."""
    assert answered.stream is not None
    out = b""
    try:
        async for chunk in answered.stream:
            yield chunk
    except FetchError as exc:
        response.failure = GatewayError(502, f"The upstream stream broke off: {exc}")
        out = stream_error_frame(response.failure)
    finally:
        await answered.aclose()
    if response.failure is None and answered.failure is not None:
        response.failure = answered.failure
    if out:
        yield out


async def _events(
    chunks: AsyncGenerator[bytes, None],
    head: dict,
    gateway: Gateway,
    keep: _Keeper,
    response: Response,
) -> AsyncIterator[bytes]:
    # An event past EDGERELAY_MAX_EVENT_BYTES (from the chat translator's parser or the
    # converter's) is ended here rather than by the stream observer, as every other stream is:
    # the converter's own ending (an error event, then response.failed carrying the output so
    # far) says more than the observer's. The observer sees it end the stream.
    converter = ResponsesStream(head, gateway.new_id, gateway.config.max_event_bytes)
    kept = False
    yield converter.start()
    try:
        try:
            async for chunk in chunks:
                out = converter.feed(chunk)
                if converter.final is not None and not kept:
                    kept = True
                    await keep(converter.final)  # before the last event: a next turn finds it
                if out:
                    yield out
            out = converter.finish()
            if converter.final is not None and not kept:
                await keep(converter.final)
        except EventTooLarge as exc:
            response.failure = event_too_large(exc)
            out = converter.fail(response.failure)
    finally:
        await chunks.aclose()
    if out:
        yield out
