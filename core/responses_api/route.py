"""``POST /v1/responses``: the gateway's handler, over the same providers as chat.

OpenAI-compatible upstreams get the request as sent (only the model renamed, the output limit
capped by the caller's policy) and their answer is passed on byte for byte, unless the provider
says ``responses = "translate"`` (a server with Chat Completions only). Every other case goes
through chat: the request becomes a chat request, which the gateway sends exactly as it sends
``/v1/chat/completions`` (``Gateway.send_chat``: the policy, the key, the provider's pool, the
per-model reasoning table in the provider's translation), and its chat answer or chunk stream
becomes the ``response`` or the Responses events. Identity, the body-size and value limits and
the stream observer are the gateway's own, in the Responses error shape.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from .. import registry
from ..chat import ChatRequest
from ..errors import GatewayError, bad_request, not_configured, stream_error_frame
from ..fetch import FetchError, FetchRequest, FetchResponse
from ..gateway import Gateway, read_answer, repaired_header, translate_stream, upstream_error
from ..http import Request, Response
from ..identity.enforce import forbidden_model, route_names
from ..identity.policy import Policy, cap_fields
from ..providers import openai
from ..responses import (
    EVENT_STREAM,
    JSON,
    is_event_stream,
    observed,
    passthrough,
    too_large,
    translated_headers,
)
from ..routing import Route, route_model
from ..safejson import dumps
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


async def handle(gateway: Gateway, request: Request) -> Response:
    """Answer one ``POST /v1/responses`` (the caller is already identified); errors are raised
    as ``GatewayError`` naming the Responses field, for the gateway to render."""
    config = gateway.config
    if len(request.body) > config.max_body_bytes:
        raise too_large(config.max_body_bytes)
    parsed = parse_request(request.body, config.max_messages, config.max_request_values)
    route = route_model(parsed.model, config)
    policy = request.identity.policy if request.identity is not None else None
    if policy is not None:
        _check_policy(parsed, route, policy, gateway)
    provider = route.provider
    if provider.key_required and not provider.api_key:
        raise not_configured(provider.name, provider.api_key_env)
    if route.kind == "openai" and provider.responses != "translate":
        return await _pass_through(gateway, parsed, route, policy)
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
    chat = ChatRequest(chat_body, parsed.model, parsed.stream, parsed.stream, raw)
    head = answer.skeleton(parsed, "resp_" + gateway.new_id(), int(gateway.clock()))
    keep = _Keeper(gateway, namespace, conversation, parsed.store)
    try:
        return await _through_chat(gateway, request, chat, route, head, keep)
    except GatewayError as error:
        raise responses_error(error, where) from None


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


async def _pass_through(
    gateway: Gateway, parsed: ResponsesRequest, route: Route, policy: Policy | None
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
        timeout=gateway.config.upstream_timeout,
    )
    upstream = await gateway.send(outbound, route)
    if upstream.status >= 400:
        raise await upstream_error(upstream, openai.translate_error)
    return passthrough(upstream)


async def _through_chat(
    gateway: Gateway,
    request: Request,
    chat: ChatRequest,
    route: Route,
    head: dict,
    keep: _Keeper,
) -> Response:
    """The chat request through the provider as on /v1/chat/completions; its chat answer (or
    chunk stream) converted. An OpenAI-compatible chat upstream's answer is chat already."""
    chat = gateway.admit_chat(request, chat, route)
    if gateway.cache is not None:
        return await _through_cache(gateway, request, chat, route, head, keep)
    provider, ctx, upstream = await gateway.send_chat(chat, route)
    repaired = repaired_header(ctx)
    if chat.stream:
        response = Response(200, [*translated_headers(EVENT_STREAM, upstream), *repaired])
        if provider.relays_openai:
            chunks = _relayed(upstream, response)
        else:
            translator = provider.stream_translator(route, ctx)
            chunks = translate_stream(upstream, translator, response)
        response.stream = _events(chunks, head, gateway, keep)
        return response
    body = await read_answer(upstream, gateway.config.max_response_bytes, route.provider.name)
    if not provider.relays_openai:
        body = provider.translate_response(body, route, ctx)
    result = answer.from_completion(body, head, gateway.new_id, route.provider.name)
    await keep(result)
    return Response(200, [*translated_headers(JSON, upstream), *repaired], dumps(result))


async def _through_cache(
    gateway: Gateway,
    request: Request,
    chat: ChatRequest,
    route: Route,
    head: dict,
    keep: _Keeper,
) -> Response:
    """The chat request through the response cache (core.cache): its chat answer, stored or
    fresh, converted as above; the cache's headers go on. Each answer is a response of its own
    (its own id, stored when asked), so previous_response_id works after a hit too."""
    assert gateway.cache is not None

    async def call(sent: ChatRequest) -> Response:
        response = await gateway._chat_answer(sent, route)
        if response.stream is not None and is_event_stream(response.headers):
            # Watched for its end (only a complete answer is stored); no hooks: the Responses
            # stream the client gets is the one they watch.
            observed(response, "chat")
        return response

    answered = await gateway.cache.chat(request, chat, call, "/v1/responses")
    kept = [h for h in answered.headers if not h[0].startswith("content-")]
    if chat.stream and is_event_stream(answered.headers):
        response = Response(200, [EVENT_STREAM, *kept])
        response.stream = _events(_closing(answered), head, gateway, keep)
        return response
    body = answered.body if answered.stream is None else await _joined(answered)
    result = answer.from_completion(body, head, gateway.new_id, route.provider.name)
    await keep(result)
    return Response(200, [JSON, *kept], dumps(result))


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


async def _relayed(upstream: FetchResponse, response: Response) -> AsyncGenerator[bytes, None]:
    """An OpenAI-compatible chat server's chunks as they come; a break is an error chunk."""
    out = b""
    try:
        async for chunk in upstream.aiter_bytes():
            yield chunk
    except FetchError as exc:
        response.failure = GatewayError(502, f"The upstream stream broke off: {exc}")
        out = stream_error_frame(response.failure)
    finally:
        await upstream.aclose()
    if out:
        yield out


async def _events(
    chunks: AsyncGenerator[bytes, None], head: dict, gateway: Gateway, keep: _Keeper
) -> AsyncIterator[bytes]:
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
            error = GatewayError(
                502,
                f"The upstream sent {exc} (EDGERELAY_MAX_EVENT_BYTES).",
                code="event_too_large",
            )
            out = converter.fail(error)
    finally:
        await chunks.aclose()
    if out:
        yield out
