"""The attempt loop of /v1/chat/completions: try each target of the model's chain, retrying as
``RetryPolicy`` decides, until one answers. Everything here happens before the client has been
sent a byte; once an answer (or its first content, for a translated stream) is on its way, it is
the answer: nothing is retried after the first byte.

The waits go through the injected ``sleep`` and the time through the injected ``clock``, so the
loop is sans-IO like the rest of core; the caller's ``deadline`` (Lambda's remaining time) caps
the total timeout.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from . import registry, routing
from .chains import Chain, Timeouts
from .chat import ChatRequest
from .config import Config
from .errors import GatewayError, not_configured, unreachable
from .fetch import FetchError, FetchRequest, FetchResponse
from .held_stream import Failed, Opened, hold
from .http import Response
from .identity.enforce import enforce_chat
from .providers.base import ChatContext, Provider, StreamTranslator
from .responses import EVENT_STREAM, JSON, passthrough, translated_headers, unexpected_status
from .retry import Attempt, GiveUp, NextTarget, RetryPolicy
from .sending import (
    ATTEMPTS_HEADER,
    ERROR_BODY_LIMIT,
    TARGET_HEADER,
    Bounded,
    Seams,
    failure_kind,
    out_of_time,
    timed,
)

if TYPE_CHECKING:
    from .identity.policy import Policy


def chain_for(model: str, config: Config) -> Chain:
    """The targets a model name stands for: an alias's chain, or the name alone."""
    chain = config.chains.get(model)
    if chain is not None:
        return chain
    return Chain((model,), config.retry, config.timeouts)


def admit(chat: ChatRequest, config: Config, policy: Policy | None) -> ChatRequest:
    """``chat`` as the first target of its chain that can take it would send it (the caller's
    policy applied, the provider's key set): what may be answered from a cache. Raises the
    first target's refusal when no target can take it."""
    return admitted(chat, config, policy)[0]


def admitted(
    chat: ChatRequest, config: Config, policy: Policy | None
) -> tuple[ChatRequest, routing.Route]:
    """``admit``'s answer and the route of the chain's first target (what limits meter by)."""
    targets = chain_for(chat.model, config).targets
    # A first target that does not route (a model that does not exist) is the answer.
    first = routing.route_model(targets[0], config)
    refused: GatewayError | None = None
    for i, target in enumerate(targets):
        try:
            route = first if i == 0 else routing.route_model(target, config)
            checked = enforce_chat(chat, route, policy, config) if policy is not None else chat
            provider_config = route.provider
            if provider_config.key_required and not provider_config.api_key:
                raise not_configured(provider_config.name, provider_config.api_key_env)
        except GatewayError as refusal:
            refused = refused or refusal
            continue
        return checked, first
    assert refused is not None  # a chain has at least one target
    raise refused


class _Failure(NamedTuple):
    attempt: Attempt
    error: GatewayError


async def answer(
    chat: ChatRequest,
    config: Config,
    seams: Seams,
    deadline: float | None = None,
    policy: Policy | None = None,
    chain: Chain | None = None,
    tried: int = 0,
) -> Response:
    """The answer to a checked chat request, from the first target of its chain that gives one.
    Raises the ``GatewayError`` the client should get when none does. ``chain``: the targets
    left to try when a caller already tried the first ones itself (``tried`` attempts, counted
    on in ``x-edgerelay-attempts``); by default the chat model's whole chain."""
    if chain is None:
        chain = chain_for(chat.model, config)
    start = seams.clock()
    stop = start + chain.timeouts.total
    if deadline is not None:
        stop = min(stop, deadline)
    attempts = tried
    last: GatewayError | None = None
    targets = chain.targets
    for index, target in enumerate(targets):
        has_next = index + 1 < len(targets)
        route = routing.route_model(target, config)
        try:
            prepared = _prepare(chat, route, config, seams, policy)
        except GatewayError as refusal:
            # A target that cannot take this request (a field it refuses, no key set) is
            # skipped when another one may; the last one's refusal is the answer.
            last = refusal
            if has_next:
                continue
            raise _tagged(refusal, attempts, route) from None
        outbound, provider, ctx = prepared
        number = 0
        while True:
            number += 1
            attempts += 1
            result = await _attempt(
                outbound, route, provider, ctx, chat, config, chain.timeouts, stop, seams
            )
            if isinstance(result, Response):
                result.headers.extend(_repaired(ctx))
                return _tag(result, attempts, route)
            last = _tagged(result.error, attempts, route)
            last.headers = (*last.headers, *_repaired(ctx))
            decision = _decide(chain.policy, result.attempt, number, seams, stop, has_next)
            if isinstance(decision, GiveUp):
                raise last
            if isinstance(decision, NextTarget):
                break
            await seams.sleep(decision.seconds)
    assert last is not None  # the loop above runs at least once and ends by raising or here
    raise last


def _decide(policy: RetryPolicy, attempt: Attempt, number: int, seams: Seams, stop, has_next):
    return policy.decide(
        attempt,
        number=number,
        now=seams.clock(),
        deadline=stop,
        random=seams.random,
        has_next=has_next,
    )


def _prepare(
    chat: ChatRequest,
    route: routing.Route,
    config: Config,
    seams: Seams,
    policy: Policy | None,
):
    """The upstream request for one target; a ``GatewayError`` when it cannot take it (the
    caller's policy, checked for every target, may refuse it too)."""
    if policy is not None:
        chat = enforce_chat(chat, route, policy, config)
    provider_config = route.provider
    if provider_config.key_required and not provider_config.api_key:
        raise not_configured(provider_config.name, provider_config.api_key_env)
    provider = registry.provider(route.kind)
    ctx = ChatContext.lazy(seams.clock, seams.new_id, chat.include_usage, config.max_event_bytes)
    if not provider.relays_openai:
        ctx.draw()  # the answer's id is the first id drawn, before any tool call's
    outbound = provider.build_request(chat, route, config, ctx)._replace(pool=provider_config.name)
    return outbound, provider, ctx


async def _attempt(
    outbound: FetchRequest,
    route: routing.Route,
    provider: Provider,
    ctx: ChatContext,
    chat: ChatRequest,
    config: Config,
    timeouts: Timeouts,
    stop: float,
    seams: Seams,
) -> Response | _Failure:
    remaining = stop - seams.clock()
    if remaining <= 0:
        return _Failure(Attempt(None, error="timeout"), out_of_time(_name(route)))
    try:
        upstream = await (provider.local_upstream or seams.fetch)(
            timed(outbound, timeouts, remaining)
        )
    except FetchError as exc:
        return _Failure(Attempt(None, error=failure_kind(exc)), unreachable(_name(route), exc))
    if upstream.status < 200 or 300 <= upstream.status < 400:
        await upstream.aclose()  # a 1xx or a redirect: passed on it would mislead the client
        error = unexpected_status(_name(route), upstream.status)
        return _Failure(Attempt(upstream.status), error)
    if upstream.status >= 400:
        body = await read_error_body(upstream)
        error = upstream_error(upstream, body, provider.translate_error)
        return _Failure(Attempt(upstream.status, upstream.headers, body), error)
    # The body is read within the total timeout too (a stream that runs past it ends).
    bounded = Bounded(upstream, stop, seams.clock)
    if provider.relays_openai:
        return passthrough(upstream, body=bounded.aiter_bytes())
    if chat.stream:
        stream = provider.stream_translator(route, ctx)
        try:
            held = await hold(bounded, stream)
        except BaseException:  # cancelled (the client left): drop the upstream at once
            await upstream.aclose()
            raise
        if isinstance(held, Failed):
            await upstream.aclose()  # before waiting or trying elsewhere
            return _Failure(held.attempt, held.error)
        response = Response(200, translated_headers(EVENT_STREAM, upstream))
        # The relay stands in for the upstream: closing the response closes both, even if the
        # body was never read, and it has no native body to hand on (the body is translated).
        response.stream = response.upstream = _Relay(held, upstream, stream, response)
        return response
    try:
        body = await read_capped(bounded.aiter_bytes(), config.max_response_bytes, _name(route))
    except FetchError as exc:
        return _Failure(Attempt(None, error="broken"), unreachable(_name(route), exc))
    finally:
        await upstream.aclose()
    body = provider.translate_response(body, route, ctx)
    return Response(200, translated_headers(JSON, upstream), body)


class _Relay:
    """The held frames, then the rest of the upstream translated as it arrives. A break from
    here on is a terminal error frame for the client: the answer has begun. Closing it closes
    the upstream even if the body was never read (a client gone before the first write)."""

    __slots__ = ("_frames", "_upstream")
    native_body = None  # as ``Response.upstream``: nothing to hand on untouched

    def __init__(self, held: Opened, upstream: FetchResponse, translator, response: Response):
        self._upstream = upstream
        self._frames = _relay(held, upstream, translator, response)

    @property
    def status(self) -> int:
        return self._upstream.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._upstream.headers

    def __aiter__(self) -> _Relay:
        return self

    def __anext__(self) -> Awaitable[bytes]:
        return self._frames.__anext__()

    async def aclose(self) -> None:
        await self._frames.aclose()
        await self._upstream.aclose()


async def _relay(
    held: Opened, upstream: FetchResponse, translator: StreamTranslator, response: Response
) -> AsyncGenerator[bytes, None]:
    """The held frames, then the rest translated; a break ends it with the translator's
    error chunk. An event past EDGERELAY_MAX_EVENT_BYTES (``sse.EventTooLarge``) is raised on
    to the stream observer, which ends every stream the same way (``core.observer``)."""
    out = b""
    try:
        for piece in held.held:
            if piece:
                yield piece
        if held.ended:
            return
        async for chunk in held.chunks:
            out = translator.feed(chunk)
            if out:
                yield out
        out = translator.finish()
    except FetchError as exc:
        response.failure = GatewayError(502, f"The upstream stream broke off: {exc}")
        out = translator.fail(response.failure)
    finally:
        await upstream.aclose()
    if out:
        yield out


def _name(route: routing.Route) -> str:
    return route.provider.name


async def read_capped(chunks: AsyncIterable[bytes], limit: int, name: str) -> bytes:
    """The whole (decompressed) body, or a 502 as soon as it passes ``limit``: reading
    stops there and the connection is dropped, so an answer that expands without end cannot
    take the gateway's memory with it."""
    kept, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise GatewayError(
                502,
                f"The {name} upstream's answer is larger than EDGERELAY_MAX_RESPONSE_BYTES "
                f"({limit} bytes).",
                code="response_too_large",
            )
        kept.append(chunk)
    return b"".join(kept)


async def read_error_body(upstream: FetchResponse) -> bytes:
    """Up to ``ERROR_BODY_LIMIT`` of an error body; the connection is released after."""
    body = b""
    try:
        async for chunk in upstream.aiter_bytes():
            body += chunk
            if len(body) >= ERROR_BODY_LIMIT:
                break
    except FetchError:
        pass
    finally:
        await upstream.aclose()
    return body


def upstream_error(upstream: FetchResponse, body: bytes, translate) -> GatewayError:
    """The upstream's error in OpenAI's shape, keeping the headers a client backs off by."""
    error = translate(upstream.status, body, upstream.headers)
    # The client sees the upstream's request id, rate-limit state and retry-after (seconds or
    # an HTTP date, as sent) on errors too: SDKs read them to back off.
    kept = translated_headers(JSON, upstream)[1:]
    error.headers = (*error.headers, *kept)
    if error.retry_after is None:
        error.retry_after = _retry_after(upstream.headers)
    return error


def _retry_after(headers) -> float | None:
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: passed on as sent (above), not understood here


def _repaired(ctx: ChatContext) -> tuple[tuple[str, str], ...]:
    """``x-edgerelay-repaired`` when the request was changed to be answerable."""
    repaired = getattr(ctx, "repaired", None)
    return (("x-edgerelay-repaired", repaired),) if repaired else ()


def _target(route: routing.Route) -> str:
    return f"{_name(route)}/{route.model}"


def _tag(response: Response, attempts: int, route: routing.Route) -> Response:
    response.headers.append((ATTEMPTS_HEADER, str(attempts)))
    response.headers.append((TARGET_HEADER, _target(route)))
    return response


def _tagged(error: GatewayError, attempts: int, route: routing.Route) -> GatewayError:
    if attempts:
        error.headers = (
            *error.headers,
            (ATTEMPTS_HEADER, str(attempts)),
            (TARGET_HEADER, _target(route)),
        )
    return error
