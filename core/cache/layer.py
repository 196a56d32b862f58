"""The response cache in front of the chat completion and of a Responses request passed
through to the upstream's own ``/responses``: plan, look up, join a flight or lead one,
replay, and say what happened in the answer's headers.

Answers carry ``x-edgerelay-cache`` (``HIT``, ``MISS``, ``BYPASS`` or ``REFRESH``),
``x-edgerelay-cache-key`` when the entry was served or will be stored, and ``age`` (seconds
since it was stored) on a hit. A request that waited for an identical request's answer in
flight is a ``HIT`` with age 0: it made no upstream call of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

from .. import safejson
from ..chat import ChatRequest
from ..errors import GatewayError
from ..http import Request, Response
from ..limits.stream_usage import IncludeUsageStripper, UsageMeter
from ..observer import Reason
from ..responses import EVENT_STREAM, JSON, is_event_stream
from ..sse import SSEParser
from . import responses_stream
from .entry import Entry, json_answer, sse_events
from .flight import Flight, FlightReader, Rewritten
from .keys import cache_key, namespace_for
from .plan import HEADER, Plan, plan_request
from .record import Forms, Recording
from .settings import CacheSettings
from .store import CacheStore, CacheUnavailable

KEY_HEADER = "x-edgerelay-cache-key"
CHAT_ROUTE = "/v1/chat/completions"
RESPONSES_ROUTE = "/v1/responses"

Call = Callable[[ChatRequest], Awaitable[Response]]


class Outcome(NamedTuple):
    """What the cache did for one request (the log line reads it)."""

    status: str  # HIT, MISS, BYPASS, REFRESH
    key: str | None = None


class ResponseCache:
    """One per gateway: the settings, the store, the clock and the flights in progress."""

    def __init__(
        self,
        settings: CacheSettings,
        store: CacheStore | None,
        clock: Callable[[], float],
        *,
        max_response_bytes: int,
        missing_store: str | None = None,
        single_flight: bool = True,
        flight_tick: float | None = None,
        keep_alive: Callable[[Any], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.max_response_bytes = max_response_bytes
        # Why there is no store (the Worker without its KV binding), for the log line.
        self.missing_store = missing_store
        # Identical requests in flight wait for one upstream call; ``flight_tick``: how often a
        # waiting request re-arms a timer of its own (workerd; see ``Flight``).
        self.single_flight = single_flight
        self.flight_tick = flight_tick
        # Called with each upstream call's task as it starts, in the request that leads it: a
        # target whose requests end their own work when they finish (the Worker) keeps it going
        # for the others (``ctx.waitUntil``).
        self.keep_alive = keep_alive
        self.flights: dict[str, Flight] = {}

    def plan(self, request: Request, chat: ChatRequest) -> Plan | None:
        policy = request.identity.policy.name if request.identity is not None else None
        return plan_request(self.settings, request.headers, chat.body, policy, chat.model)

    async def chat(
        self, request: Request, chat: ChatRequest, call: Call, route: str = CHAT_ROUTE
    ) -> Response:
        """The answer to a chat completion through the cache: ``call`` makes the upstream call
        (the gateway's own chat completion, given the request to send). ``route``: the route
        the client called (part of the key: a Responses request that becomes this chat request
        has entries of its own)."""
        plan = self.plan(request, chat)
        if plan is None:
            return await call(chat)
        form = _ChatForm(chat, call)
        return await self._serve(request, plan, route, chat.model, chat.body, form)

    async def responses(
        self,
        request: Request,
        body: dict,
        model: str,
        stream: bool,
        call: Callable[[dict], Awaitable[Response]],
    ) -> Response:
        """The answer to a Responses request passed through to an upstream that speaks the
        Responses API, through the cache: ``body`` as the policy lets it through, ``model`` as
        the client named it, ``stream`` whether the client asked for events; ``call`` makes the
        upstream call with the body given (always streamed). The key covers whether the
        upstream keeps the response (``store`` not false): a hit's ``resp_…`` id is the one it
        stored, which a later ``previous_response_id`` names."""
        policy = request.identity.policy.name if request.identity is not None else None
        plan = plan_request(self.settings, request.headers, body, policy, model)
        if plan is None:
            return await call(body)
        route = RESPONSES_ROUTE if body.get("store") is not False else RESPONSES_ROUTE + "#unstored"
        form = _ResponsesForm(body, stream, call)
        return await self._serve(request, plan, route, model, body, form)

    async def _serve(
        self, request: Request, plan: Plan, route: str, model: str, body: dict, form: _Form
    ) -> Response:
        if not plan.active or self.store is None:
            return _tagged(await form.call(), Outcome("BYPASS"), request)
        identity = request.identity
        namespace = namespace_for(
            self.settings,
            identity.client_id if identity is not None else None,
            identity.policy.name if identity is not None else None,
        )
        try:
            generations = await self.store.generations(namespace)
        except CacheUnavailable as exc:
            _warn("cache store unavailable, request not cached: %s", exc)
            return _tagged(await form.call(), Outcome("BYPASS"), request)
        key = cache_key(route, model, body, namespace, generations)
        if plan.lookup:
            hit = await self._lookup(key)
            if hit is not None:
                return _tagged(form.replay(hit, self.clock()), Outcome("HIT", key), request)
            flight = self.flights.get(key)
            if flight is not None and flight.joinable:
                await self._count(True)
                return await self._follow(flight, form, Outcome("HIT", key), request, age=0)
        # Lead before counting: counting may yield (a call to the store), and an identical
        # request arriving meanwhile must find this flight.
        flight = self._lead(key, namespace, plan, form)
        if plan.lookup:
            await self._count(False)
        outcome = Outcome(plan.status, key if plan.store else None)
        return await self._follow(flight, form, outcome, request)

    async def _lookup(self, key: str) -> Entry | None:
        assert self.store is not None
        try:
            entry = await self.store.get(key, self.clock())
        except CacheUnavailable as exc:
            _warn("cache store unavailable, looked up nothing: %s", exc)
            return None
        if entry is not None:
            await self._count(True)
        return entry

    async def _count(self, hit: bool) -> None:
        assert self.store is not None
        try:
            await self.store.count(hit)
        except CacheUnavailable:
            pass  # stats are best effort: the answer does not wait on them

    def _lead(self, key: str, namespace: str, plan: Plan, form: _Form) -> Flight:
        """Start the one upstream call for ``key``: always streamed (chat: with usage), so the
        answer serves streaming and JSON clients alike and its usage is known."""
        store = self.store
        assert store is not None

        async def stored(flight: Flight) -> None:
            if flight.recording is None:
                return
            now = self.clock()
            entry = flight.recording.entry(key, namespace, now, plan.ttl, flight.ended)
            if entry is None:
                return
            try:
                await store.put(entry, now)
            except CacheUnavailable as exc:
                _warn("cache store unavailable, answer not stored: %s", exc)

        def closed(flight: Flight) -> None:
            if self.flights.get(key) is flight:
                del self.flights[key]

        flight = Flight(
            form.streamed_call,
            limit=self.max_response_bytes,
            recording=Recording(self.settings.max_entry_bytes, form.forms) if plan.store else None,
            on_end=stored,
            on_close=closed,
            tick=self.flight_tick,
        )
        if self.single_flight and plan.lookup and plan.store and key not in self.flights:
            self.flights[key] = flight  # identical requests arriving now wait for this one
        flight.start()
        if self.keep_alive is not None:
            self.keep_alive(flight.task)
        return flight

    async def _follow(
        self,
        flight: Flight,
        form: _Form,
        outcome: Outcome,
        request: Request,
        age: int | None = None,
    ) -> Response:
        """This client's answer from ``flight``: a live stream, or the JSON once it is over."""
        reader = flight.reader()
        upstream = await flight.opened(reader)  # raises the call's error for every waiter
        kept = [h for h in upstream.headers if not h[0].startswith("content-")]
        if not is_event_stream(upstream.headers):
            # The upstream ignored `stream` (some compatible servers do): what it sent goes on.
            body = b"".join([chunk async for chunk in reader])
            return _tagged(
                Response(upstream.status, list(upstream.headers), body), outcome, request
            )
        headers = list(kept) if age is None else []
        if age is not None:
            headers.append(("age", str(age)))
        if form.stream:
            stream = form.live(reader, joined=age is not None)
            response = Response(200, [EVENT_STREAM, *headers], stream=stream)
            return _tagged(response, outcome, request)
        events = [chunk async for chunk in reader]
        return _tagged(
            Response(200, [JSON, *headers], form.answer(events, flight.ended)), outcome, request
        )


class _Form:
    """What differs between the APIs whose streams the cache serves: the upstream call (always
    streamed), how a recording becomes an entry, and each client's stream or JSON answer."""

    __slots__ = ()

    stream: bool  # the client asked for events
    forms: Forms | None = None  # ``Recording``'s: None for a chat stream

    def call(self) -> Awaitable[Response]:
        """The call as the client asked it (a bypass)."""
        raise NotImplementedError

    def streamed_call(self) -> Awaitable[Response]:
        """The call the flight makes: streamed, whatever the client asked."""
        raise NotImplementedError

    def replay(self, entry: Entry, now: float) -> Response:
        raise NotImplementedError

    def live(self, reader: FlightReader, joined: bool) -> AsyncIterator[bytes]:
        """A streaming client's stream (``joined``: it waits for another request's call)."""
        raise NotImplementedError

    def answer(self, events: list[bytes], ended: Reason | None) -> bytes:
        """A JSON client's answer from the whole stream; raises its error if it failed."""
        raise NotImplementedError


class _ChatForm(_Form):
    __slots__ = ("_call", "chat", "stream")

    def __init__(self, chat: ChatRequest, call: Call) -> None:
        self.chat, self._call, self.stream = chat, call, chat.stream

    def call(self) -> Awaitable[Response]:
        return self._call(self.chat)

    def streamed_call(self) -> Awaitable[Response]:
        return self._call(streamed(self.chat))

    def replay(self, entry: Entry, now: float) -> Response:
        return replay(entry, self.chat, now)

    def live(self, reader: FlightReader, joined: bool) -> AsyncIterator[bytes]:
        return (
            reader
            if self.chat.include_usage
            else Rewritten(reader, IncludeUsageStripper(UsageMeter()))
        )

    def answer(self, events: list[bytes], ended: Reason | None) -> bytes:
        if ended != "complete":
            raise _stream_error(events)
        return json_answer(events)


class _ResponsesForm(_Form):
    __slots__ = ("_call", "body", "echoed", "stream")
    forms = staticmethod(responses_stream.forms)

    def __init__(
        self, body: dict, stream: bool, call: Callable[[dict], Awaitable[Response]]
    ) -> None:
        self.body, self.stream, self._call = body, stream, call
        self.echoed = responses_stream.echoes(body)

    def call(self) -> Awaitable[Response]:
        return self._call(self.body)

    def streamed_call(self) -> Awaitable[Response]:
        return self._call({**self.body, "stream": True})

    def replay(self, entry: Entry, now: float) -> Response:
        headers = [("age", str(entry.age(now)))]
        own = not responses_stream.neutral(self.echoed)
        if self.stream:
            # One write, the events as recorded (see ``replay``).
            body = b"".join(entry.events)
            if own:
                rewriter = responses_stream.EchoRewriter(self.echoed)
                body = rewriter.feed(body) + rewriter.finish()
            return Response(200, [EVENT_STREAM, *headers], body)
        answer = responses_stream.with_echoes(entry.answer, self.echoed) if own else entry.answer
        return Response(200, [JSON, *headers], answer)

    def live(self, reader: FlightReader, joined: bool) -> AsyncIterator[bytes]:
        # The leader's stream echoes its own fields; another request's are put in.
        return Rewritten(reader, responses_stream.EchoRewriter(self.echoed)) if joined else reader

    def answer(self, events: list[bytes], ended: Reason | None) -> bytes:
        return responses_stream.json_answer(events, self.echoed)


def streamed(chat: ChatRequest) -> ChatRequest:
    """``chat`` asking for a stream with usage (what a cacheable request sends upstream)."""
    options = chat.body.get("stream_options")
    options = dict(options) if isinstance(options, dict) else {}
    options["include_usage"] = True
    body = {**chat.body, "stream": True, "stream_options": options}
    return chat._replace(body=body, stream=True, include_usage=True, raw=safejson.dumps(body))


def replay(entry: Entry, chat: ChatRequest, now: float) -> Response:
    """A stored answer in the form this client asked for, with its ``age``."""
    headers = [("age", str(entry.age(now)))]
    if chat.stream:
        # One write: the events (and so the text's split) are the recorded ones; nothing is
        # gained by pacing bytes that are all here already.
        body = b"".join(sse_events(entry, chat.include_usage))
        return Response(200, [EVENT_STREAM, *headers], body)
    return Response(200, [JSON, *headers], entry.answer)


def _stream_error(events: list[bytes]) -> GatewayError:
    """A JSON client's error for a stream that did not complete: the upstream's own message
    when its error event carries one."""
    parser = SSEParser()
    for event in [e for batch in events for e in parser.feed(batch)] + parser.finish():
        try:
            body = safejson.loads(event.data)
        except (ValueError, RecursionError):
            continue
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return GatewayError(502, error["message"], code="bad_gateway")
    return GatewayError(502, "The upstream stream ended before the answer was complete.")


def _tagged(response: Response, outcome: Outcome, request: Request) -> Response:
    response.headers.append((HEADER, outcome.status))
    if outcome.key is not None:
        response.headers.append((KEY_HEADER, outcome.key))
    return response


def _warn(message: str, exc: Exception) -> None:
    import logging  # only on this rare path: slow to import

    logging.getLogger("edgerelay").warning(message, exc)
