"""The gateway's side of limits: who is calling, admission before any upstream call, and the
account wrapped around the answer (headers, usage, include_usage added and removed) — on the
chat route and on the native passthrough routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ..chat import ChatRequest
from ..errors import GatewayError
from ..fetch import Fetch, FetchRequest, FetchResponse
from ..http import Request, Response
from ..responses import is_event_stream
from ..safejson import dumps
from .accounting import Account, MeteredUpstream
from .headers import is_rate_limit_header
from .keys import client_keys
from .limiter import Limiter, LimitRequest
from .stream_usage import strip_added_usage, with_include_usage
from .usage import Usage

ChatFn = Callable[..., Awaitable[Response]]
_CACHE_HIT = ("x-edgerelay-cache", "HIT")


class LimitGate:
    def __init__(
        self,
        config,
        store,
        clock: Callable[[], float],
        new_id: Callable[[], str],
        missing_store: str,
    ) -> None:
        self.limiter = Limiter(
            config.limits, store, fail_open=config.store_fail_open, missing_store=missing_store
        )
        self.clock = clock
        self.new_id = new_id

    def caller(self, request: Request) -> tuple[str | None, str]:
        """The client id and policy name of a request, from client identity when the gateway
        checked it; otherwise anonymous: the ``anonymous`` policy when there is one, else
        ``default``."""
        identity = getattr(request, "identity", None)
        if identity is not None:
            client_id = None if identity.client_id == "anonymous" else identity.client_id
            return client_id, identity.policy.name
        policies = self.limiter.settings.policies
        return None, "anonymous" if "anonymous" in policies else "default"

    async def admit(self, request: Request, chat: ChatRequest, route) -> Account | None:
        """Refuse (raise the 429/503) or reserve; None when no limit applies to the caller."""
        return await self.admit_call(request, route.model, _max_tokens(chat.body), chat.stream)

    async def admit_call(
        self, request: Request, model: str | None, max_tokens: int | None, stream: bool
    ) -> Account | None:
        """``admit`` for a call described by its parts (the passthrough routes)."""
        client_id, policy_name = self.caller(request)
        log = request.log
        if log is not None:
            log.client_id, log.policy = client_id, policy_name
        policy = self.limiter.policy(policy_name)
        if policy is None:
            return None
        limit_request = LimitRequest(
            client_keys(client_id, request.client_ip),
            policy,
            model or "",
            max_tokens,
            len(request.body),
            stream,
            self.new_id() if stream else "",  # a slot id: only streams take a slot
        )
        decision = await self.limiter.admit(limit_request, self.clock())
        if log is not None:
            log.limit = decision.outcome
        if decision.error is not None:
            raise decision.error
        if decision.reservation is None:
            return None  # failing open: admitted, nothing counted
        account = Account(self.limiter, decision.reservation, self.clock)
        account.headers = decision.headers
        if log is not None:
            log.account = account  # the usage charged goes in the line when it is made
        return account

    async def answer(self, account: Account, chat: ChatRequest, route, chat_fn: ChatFn) -> Response:
        """``chat_fn(chat)``'s answer, accounted: the gateway's rate-limit headers instead of
        the provider's, usage read from the answer (a stream is asked for its usage when the
        client did not ask, and what that adds is removed), the account finished however the
        answer ends. ``route``: the first target (whether its provider takes stream_options)."""
        inject = (
            chat.stream
            and not chat.include_usage
            and account.reservation.reserved_tokens > 0
            and _takes_stream_options(route)
        )
        if inject:
            # The answer carries its usage (an OpenAI-compatible upstream is asked for it, a
            # translated stream writes it); the account's watch removes it again.
            body = with_include_usage(chat.body)
            chat = chat._replace(body=body, raw=dumps(body), include_usage=True)
        response = await _answered(account, chat_fn, chat)
        if _CACHE_HIT in response.headers:
            account.free = True  # answered from the cache: no tokens were spent
        if response.stream is None:
            if inject and is_event_stream(response.headers):
                # A stream replayed in one piece (a cache hit): without what was added too.
                response.body = strip_added_usage(response.body, account.meter)
            account.settle_json_on_close(response)
            return response
        account.watch(response, "strip" if inject else "sse" if chat.stream else "json")
        return response

    async def around(
        self, account: Account, produce: Callable[[], Awaitable[Response]]
    ) -> Response:
        """The answer ``produce`` makes, accounted: the gateway's rate-limit headers, usage
        read from the JSON answer or the event stream, no tokens for an error (routes whose
        answers carry their usage as they are: ``/v1/responses``)."""
        response = await _answered(account, produce)
        if response.status >= 400 or _CACHE_HIT in response.headers:
            account.free = True  # an error, or answered from the cache: no tokens were spent
        if response.stream is None:
            account.settle_json_on_close(response)
            return response
        account.watch(response, "sse" if is_event_stream(response.headers) else "json")
        return response

    async def admit_responses(self, request: Request, body: dict, route, stream: bool):
        """``admit`` for ``POST /v1/responses`` once the route has checked the request (a
        request it refuses is not counted, as on the chat route): ``body`` the parsed request,
        ``route`` its model's route."""
        limit = body.get("max_output_tokens")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
            limit = None
        return await self.admit_call(request, route.model, limit, stream)

    def native_fetch(self, request: Request, native, fetch: Fetch) -> _LimitedFetch:
        """``fetch`` for one passthrough call (``native``: its ``core.passthrough.Native``):
        the call is admitted when it is about to go upstream, so after the route's own checks
        (allowlist, size, key); a refusal raised here reaches the client in the route's own
        error shape (the relay renders it). The answer is metered on its way back; the
        relay's response must be given to its ``settle``."""
        return _LimitedFetch(self, request, native, fetch)


class _LimitedFetch:
    """The Fetch of one passthrough call under limits. Every attempt of the call (the retry
    policy may send it again) is the same request: admitted once, at its first attempt; each
    attempt's answer carries the gateway's headers and, when it reaches the client, is metered.
    The account is finished by the answer that reached the client (``settle``), never by an
    attempt the retry policy dropped."""

    __slots__ = (
        "_account",
        "_admitted",
        "_body",
        "_fetch",
        "_gate",
        "_last",
        "_native",
        "_request",
    )

    def __init__(self, gate: LimitGate, request: Request, native, fetch: Fetch) -> None:
        self._gate = gate
        self._request = request
        self._native = native
        self._fetch = fetch
        self._admitted = False
        self._account: Account | None = None
        self._body: bytes | None = None  # the body every attempt sends, when usage is asked
        self._last: MeteredUpstream | None = None

    async def __call__(self, request: FetchRequest) -> FetchResponse:
        if not self._admitted:
            self._admitted = True
            await self._admit()
        account = self._account
        if account is None:
            return await self._fetch(request)
        if self._body is not None:
            request = request._replace(body=self._body)
        upstream = await self._fetch(request)
        self._last = MeteredUpstream(upstream, account, strip=self._body is not None)
        return self._last

    async def _admit(self) -> None:
        from ..passthrough import canonical_path  # it imports the responses module
        from .native import read_call

        provider, inbound = self._native.provider, self._request
        call = read_call(provider.kind, canonical_path(self._native.rest), inbound.body)
        log = inbound.log
        if log is not None:
            log.model = log.model_used = call.model
        try:
            account = await self._gate.admit_call(inbound, call.model, call.max_tokens, call.stream)
        except GatewayError as error:
            if self._native.flavor != "openai":
                error.type = None  # OpenAI's error types; the provider's shape has its own
            raise
        if account is None:
            return
        if not call.spends_tokens:
            account.free = True  # token counting: a request, but no tokens
        if call.may_add_usage and provider.stream_usage and account.reservation.reserved_tokens:
            # The upstream is asked for usage; what that adds is removed on the way back.
            self._body = dumps(with_include_usage(call.body))
        self._account = account

    async def settle(self, response: Response | None) -> None:
        """The call's answer (None: there is none, the call was cancelled) finishes the
        account: the last attempt's answer is metered on its way out and settled when the
        response is closed; anything else at once with no tokens (the gateway's own error:
        unreachable, refused, out of time)."""
        account = self._account
        if account is None:
            return
        last = self._last
        if last is None or response is None or response.stream is None:
            await account.finish(Usage())
            return
        if last.mode is None:
            account.free = True  # the provider's error, passed on: no tokens were spent
            account.settle_on_close(response)
        else:
            account.watch(response, last.mode)

    async def aclose(self) -> None:
        await self._fetch.aclose()


async def _answered(
    account: Account, produce: Callable[..., Awaitable[Response]], *args
) -> Response:
    """``produce(*args)``'s answer with the gateway's rate-limit headers; an error (raised
    with those headers) or a cancelled call spends no tokens."""
    try:
        response = await produce(*args)
    except GatewayError as error:
        await account.finish(Usage())  # refused or unreachable: no tokens were spent
        error.headers = tuple(_with_limit_headers(error.headers, account.headers))
        raise
    except BaseException:
        await account.finish(Usage())
        raise
    response.headers = _with_limit_headers(response.headers, account.headers)
    return response


def _with_limit_headers(headers, ours) -> list[tuple[str, str]]:
    """The gateway's rate-limit headers instead of the provider's (which describe the owner's
    whole account)."""
    kept = [h for h in headers if not is_rate_limit_header(h[0].lower())]
    kept += ours
    return kept


def _takes_stream_options(route) -> bool:
    """Whether a stream from ``route`` can be asked for its usage: a translated stream writes
    it; an OpenAI-compatible upstream is asked unless its provider says it rejects the field."""
    from .. import registry  # here: the registry imports every provider

    return route.provider.stream_usage or not registry.provider(route.kind).relays_openai


def _max_tokens(body: dict) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None
