"""The gateway: one ``handle(Request) -> Response`` that every platform adapter calls.

It routes, checks and translates; the upstream is reached only through the injected ``Fetch``,
and the clock and id source are injected too, so this module stays sans-IO.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import attempts, routing
from . import passthrough as native
from .attempts import Seams
from .chat import ChatRequest, parse_chat_request
from .config import Config
from .cors import CorsPolicy
from .errors import GatewayError
from .fetch import Fetch, FetchRequest, FetchResponse
from .http import Request, Response
from .identity import SignatureVerifier, sessions
from .identity.authenticate import Authenticator
from .identity.enforce import route_names
from .identity.settings import IdentitySettings
from .observer import HookFactory, Protocol, StreamHook
from .redact import redactor_for
from .requestlog import RequestLog, request_id
from .responses import (
    JSON,
    body_stalled,
    error_response,
    is_event_stream,
    observed,
    too_large,
)
from .responses_api.store import MemoryResponseStore, ResponseStore
from .safejson import dumps

if TYPE_CHECKING:
    from .identity.policy import Policy
    from .limits.admission import LimitGate

_ROUTES = {
    "/v1/chat/completions": "POST",
    "/v1/responses": "POST",
    "/v1/models": "GET",
    "/healthz": "GET",
    "/readyz": "GET",
}
# Routes anyone may call: health checks, and the session routes (a page without a session
# asks whether sessions are on, then trades a Turnstile token for one).
_OPEN = frozenset({"/healthz", "/readyz", "/v1/sessions"})


def _is_cache_admin(path: str) -> bool:
    return path == "/v1/cache" or path.startswith("/v1/cache/")


# What to set when limits are configured and a target has no store for their counters.
_MISSING_STORE = {
    "server": "set EDGERELAY_STORE to memory or redis://…",
    "lambda": "set EDGERELAY_STORE to a redis:// or rediss:// URL (memory would be per Lambda "
    "instance)",
    "worker": "bind a Durable Object as EDGERELAY_LIMITS (see wrangler.toml)",
}
# Seconds between the timers a Worker request re-arms while it waits for an identical request's
# answer (any pending timer keeps workerd from cancelling it; a long one costs nothing).
_FLIGHT_TICK = 10.0
# Targets reachable from the internet by default: no identity configured means 401.
PUBLIC_TARGETS = frozenset({"worker", "lambda"})


class Gateway:
    """Edgerelay's whole request handling, platform-free: adapters build it once with the
    configuration, their ``Fetch``, a clock and an id source, then call ``handle`` per request.

    ``stream_hooks``: factories of ``StreamHook``s, asked once per relayed event stream (the
    one place where features that watch streams plug in). ``cache_keep_alive``: given the task
    of each upstream call the response cache shares between identical requests, where the
    request that started it would otherwise end it (the Worker's ``ctx.waitUntil``)."""

    def __init__(
        self,
        config: Config,
        fetch: Fetch,
        *,
        clock: Callable[[], float],
        new_id: Callable[[], str],
        verifier: SignatureVerifier | None = None,
        target: str = "server",
        stream_hooks: Sequence[HookFactory] = (),
        cache_store: object = None,
        cache_missing: str | None = None,
        cache_keep_alive: Callable[[Any], None] | None = None,
        response_store: ResponseStore | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = lambda: 1.0,
        limit_store=None,
        missing_store: str | None = None,
        new_request_id: Callable[[], str] | None = None,
    ) -> None:
        self.config = config
        self.fetch = fetch
        self.clock = clock
        self.new_id = new_id
        # Checks JWKS-signed JWTs (RS256/ES256/EdDSA); without one such tokens are refused.
        self.verifier = verifier
        # "server", "worker" or "lambda": a public target refuses anonymous model calls unless
        # identity is configured or EDGERELAY_ALLOW_ANONYMOUS=true.
        self.target = target
        # Waits between retries, and the jitter of their backoff (adapters pass random.random;
        # the default waits the whole backoff, deterministic).
        self.sleep = sleep
        self.random = random
        self.cors = CorsPolicy(config.cors_origins)
        identity = config.identity if config.identity is not None else IdentitySettings()
        self.identity: IdentitySettings = identity
        self.auth = Authenticator(identity, fetch, clock, verifier, public=target in PUBLIC_TARGETS)
        self.redactor = redactor_for(config)
        self.stream_hooks = tuple(stream_hooks)
        # Ids for x-edgerelay-request-id (the adapters pass random ones); a separate source, so
        # the ids an answer draws (completion and tool-call ids) do not depend on logging.
        self.new_request_id = new_request_id or _Sequence()
        # Rate limits and budgets (None when no policy sets any: then no store is needed).
        self.limits: LimitGate | None = None
        if config.limits is not None:
            from .limits.admission import LimitGate  # only when limited: a lighter cold start

            missing = missing_store or _MISSING_STORE[target]
            self.limits = LimitGate(config, limit_store, clock, new_id, missing)
        # The response cache (core.cache), when the configuration turns it on anywhere or sets
        # an admin key: ``cache_store`` is the target's store (None: one in this process's
        # memory, unless ``cache_missing`` says why there is none here: then nothing is cached).
        self.cache = None
        settings = config.cache
        if settings is not None and (settings.enabled or settings.admin_key):
            from .cache import MemoryCacheStore, ResponseCache  # only when caching: light import

            if cache_store is None and cache_missing is None:
                cache_store = MemoryCacheStore(settings.max_bytes)
            self.cache = ResponseCache(
                settings,
                cache_store,  # type: ignore[arg-type]  # a CacheStore
                clock,
                max_response_bytes=config.max_response_bytes,
                missing_store=cache_missing,
                # workerd cancels a request that waits only on another request's event: on
                # the Worker, a request waiting for an identical one's answer keeps a timer.
                flight_tick=_FLIGHT_TICK if target == "worker" else None,
                keep_alive=cache_keep_alive,
            )
        # Stored Responses API answers (previous_response_id, item_reference). A target whose
        # Gateway may be replaced (the Worker, on a new configuration) passes one that outlives it.
        if response_store is None:
            response_store = MemoryResponseStore(clock, config.responses_max_bytes)
        self.response_store = response_store

    async def handle(self, request: Request, *, deadline: float | None = None) -> Response:
        """Answer one request. Never raises: errors become responses in the route's error
        format. A streamed response must be closed by the adapter (``Response.aclose``) once
        its body is sent or the client has left. ``deadline`` (on ``clock``) caps the total
        timeout, e.g. a Lambda's remaining time. ``response.log`` is the request's log
        record: the adapter adds what only it sees and writes the line."""
        log = request.log = RequestLog("", self.clock(), request.method, request.path)
        log.level, log.redactor = self.config.log_level, self.redactor
        response = await self._handle(request, log, deadline)
        log.request_id = request_id(request.headers, self.new_request_id)
        log.status = response.status
        _note_headers(log, response.headers)
        response.log = log  # the adapters send its id as x-edgerelay-request-id
        return response

    async def _handle(self, request: Request, log: RequestLog, deadline: float | None) -> Response:
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            return self.cors.preflight(request.headers)  # a browser's CORS preflight
        try:
            refused = await self._admit(request)
            response = refused if refused is not None else await self._dispatch(request, deadline)
        except GatewayError as error:
            log.error_type = error.code or error.type or f"http_{error.status}"
            response = error_response(error)
        except Exception:  # a bug of ours: answer cleanly, keep the traceback in the log only
            import logging  # imported here: it is slow to import and this path is rare

            logging.getLogger("edgerelay").exception("unhandled error on %r", request)
            log.error_type = "internal_error"
            response = error_response(GatewayError(500, "Internal gateway error."))
        if "origin" in request.headers:
            self.cors.decorate(response, request.headers)
        return self.redactor.response(response) if self.redactor else response

    async def _admit(self, request: Request) -> Response | None:
        """Refuse a foreign origin (403) or a caller without a valid credential (401) before
        anything else happens, in the route's own error format; else record who is calling."""
        found = native.find(request.path, self.config)
        try:
            origin = request.headers.get("origin")
            if origin is not None and self.cors.allowed(origin) is None:
                # CORS only stops a browser reading the answer; a "simple" POST (text/plain, no
                # preflight) would still be processed and billed without this.
                raise GatewayError(403, "This origin is not allowed.", code="origin_not_allowed")
            # The cache's admin routes check their own key (core.cache.admin), not a client's.
            if request.path not in _OPEN and not _is_cache_admin(request.path):
                request.identity = await self.auth.identify(request.headers, found is not None)
        except GatewayError as error:
            return error_response(error, found.flavor if found is not None else "openai")
        return None

    def streams_upload(self, request: Request) -> bool:
        """Whether the adapter should pass this request's body on as it arrives
        (``Request.body_stream``, counted against EDGERELAY_MAX_BODY_BYTES by the adapter)
        rather than read it first: true for the allowed POSTs of the passthrough routes, whose
        bodies go upstream unchanged. Other routes parse the body, so they need it whole."""
        if self.limits is not None:
            return False  # limits read the model and output limit from the body first
        return native.streams_upload(request, self.config)

    def too_large_response(self, request: Request) -> Response:
        """For adapters that stop reading a body over the limit: a 413 in the error format of
        the route's API (a provider's own on its passthrough route)."""
        return self.refusal(request, too_large(self.config.max_body_bytes))

    def body_stalled_response(self, request: Request) -> Response:
        """For adapters that gave up on a body that stopped arriving (nothing for
        EDGERELAY_BODY_IDLE_TIMEOUT): a 408 in the route's error format."""
        return self.refusal(request, body_stalled(self.config.body_idle_timeout))

    def refusal(self, request: Request, error: GatewayError) -> Response:
        """``error`` in the error format of the route's API, with CORS headers: for what an
        adapter refuses before or outside ``handle``."""
        found = native.find(request.path, self.config)
        flavor = found.flavor if found is not None else "openai"
        response = error_response(error, flavor)
        if "origin" in request.headers:
            self.cors.decorate(response, request.headers)
        self.logged(request, response).error_type = (
            error.code or error.type or f"http_{error.status}"
        )
        return response

    def log_line(
        self, response: Response, now: float, sent: int | None, first: float | None = None
    ) -> str | None:
        """The request's log line once the adapter has sent ``response`` (``sent`` bytes, the
        first at ``first``, done at ``now``: wall clock), or None (EDGERELAY_LOG, no record)."""
        log = response.log
        if log is None:
            return None
        return log.finished(self.config.log_level, self.redactor, now, sent, first)

    def logged(self, request: Request, response: Response) -> RequestLog:
        """Give ``response`` (an answer an adapter made itself: a refusal, a time cut) the
        request's log record, so it gets its line and its ``x-edgerelay-request-id`` too."""
        log = request.log or RequestLog("", self.clock(), request.method, request.path)
        log.level, log.redactor = self.config.log_level, self.redactor
        if not log.request_id:
            log.request_id = request_id(request.headers, self.new_request_id)
        log.status = response.status
        response.log = request.log = log
        return log

    async def _dispatch(self, request: Request, deadline: float | None = None) -> Response:
        if request.path == "/v1/sessions":
            return await self.sessions(request)
        if _is_cache_admin(request.path):
            from .cache import CacheSettings, handle_admin

            cache = self.cache
            settings = cache.settings if cache is not None else CacheSettings()
            return await handle_admin(request, settings, cache.store if cache else None)
        method = _ROUTES.get(request.path)
        if method is None:
            # /openai/v1/…, /anthropic/…, /gemini/… and named providers: native passthrough.
            policy = request.identity.policy if request.identity is not None else None
            fetch = _counting(self.fetch, request.log)
            found = native.find(request.path, self.config)
            limited = None
            if found is not None:
                if request.log is not None:
                    request.log.provider = found.provider.name
                if self.limits is not None and request.method == "POST":
                    # Every POST a passthrough allows calls a model (generation, embeddings,
                    # token counting): admitted just before it first goes upstream.
                    fetch = limited = self.limits.native_fetch(request, found, fetch)
            seams = self.seams()._replace(fetch=fetch)
            try:
                response = await native.relay(
                    request, self.config, seams, policy, self.hooks, deadline
                )
            except BaseException:  # cancelled (the relay answers every error itself)
                if limited is not None:
                    await limited.settle(None)
                raise
            if limited is not None:
                await limited.settle(response)
            if response is not None:
                return response
            raise GatewayError(404, f"Unknown route: {request.method} {request.path}")
        # HEAD is GET without the body (health checkers use it); the servers drop the body.
        if request.method != method and not (request.method == "HEAD" and method == "GET"):
            allow = "GET, HEAD" if method == "GET" else method
            raise GatewayError(
                405,
                f"{request.method} is not allowed on {request.path}; use {method}.",
                headers=(("allow", allow),),
            )
        if request.path == "/v1/chat/completions":
            return await self.chat_completions(request, deadline)
        if request.path == "/v1/responses":
            from .responses_api import route  # imported on first use, as the providers are

            return await route.handle(self, request, deadline)  # its streams come observed
        if request.path == "/v1/models":
            return self.models(request)
        if request.path == "/readyz":
            return self.readiness()
        return Response(200, [JSON], b'{"status":"ok"}')

    def readiness(self) -> Response:
        """503 while any provider's connection pool is fully in use (a further request there
        would wait for a free connection), so a load balancer sends traffic elsewhere;
        ``/healthz`` stays a liveness check. A platform without pools is always ready."""
        saturated_pools = getattr(self.fetch, "saturated_pools", None)
        busy = saturated_pools() if saturated_pools is not None else []
        if busy:
            return Response(503, [JSON], dumps({"status": "saturated", "pools": sorted(busy)}))
        return Response(200, [JSON], b'{"status":"ready"}')

    async def sessions(self, request: Request) -> Response:
        """``GET /v1/sessions`` (are sessions on, which site key) and ``POST /v1/sessions``
        (a Turnstile token for a session token)."""
        if request.method in ("GET", "HEAD"):
            return sessions.describe(self.identity)
        if request.method != "POST":
            raise GatewayError(
                405,
                f"{request.method} is not allowed on {request.path}; use GET or POST.",
                headers=(("allow", "GET, HEAD, POST"),),
            )
        if len(request.body) > self.config.max_body_bytes:
            raise too_large(self.config.max_body_bytes)
        return await sessions.create(request, self.identity, self.fetch, self.clock, self.new_id)

    def hooks(self, protocol: Protocol) -> list[StreamHook]:
        """The hooks that watch one stream of ``protocol`` (none unless a feature asks)."""
        if not self.stream_hooks:
            return []
        made = (factory(protocol) for factory in self.stream_hooks)
        return [hook for hook in made if hook is not None]

    def models(self, request: Request | None = None) -> Response:
        """The models the caller may use: listed ones its policy's allowlist lets through."""
        created = int(self.clock())
        policy = request.identity.policy if request and request.identity else None
        names = routing.listed_models(self.config)
        if policy is not None and policy.models is not None:
            names = [n for n in names if self._model_allowed(n, policy)]
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": "edgerelay"}
            for name in names
        ]
        return Response(200, [JSON], dumps({"object": "list", "data": data}))

    def _model_allowed(self, name: str, policy) -> bool:
        try:
            route = routing.route_model(name, self.config)
        except GatewayError:
            return False
        return policy.allows_model(*route_names(route, self.config))

    async def chat_completions(self, request: Request, deadline: float | None = None) -> Response:
        """``POST /v1/chat/completions``: check the request, then try its model's targets
        (retrying and falling back as the retry policy decides) until one answers; one shape
        for every provider (providers/base.py), the loop in ``core.attempts``. A caller's
        policy applies to every target."""
        if len(request.body) > self.config.max_body_bytes:
            raise too_large(self.config.max_body_bytes)
        chat = parse_chat_request(
            request.body, self.config.max_messages, self.config.max_request_values
        )
        policy = request.identity.policy if request.identity is not None else None
        if request.log is not None:
            request.log.model = chat.model
        answer = functools.partial(self._cached_chat, request, policy, deadline)
        if self.limits is not None:
            # After the policy's own checks (a refused request is not counted), before the
            # cache and any upstream call (a cache hit is a request too).
            checked, route = attempts.admitted(chat, self.config, policy)
            account = await self.limits.admit(request, checked, route)
            if account is not None:
                return await self.limits.answer(account, chat, route, answer)
        return await answer(chat)

    async def _cached_chat(
        self, request: Request, policy: Policy | None, deadline: float | None, chat: ChatRequest
    ) -> Response:
        """The answer through the response cache when there is one."""
        if self.cache is not None:
            # Checked before the cache may answer: a refused caller never gets a cached answer,
            # and the key holds the request as the policy let it through.
            chat = attempts.admit(chat, self.config, policy)
            return await self.cache.chat(
                request, chat, lambda sent: self._chat(sent, policy, deadline)
            )
        return await self._chat(chat, policy, deadline)

    async def _chat(
        self, chat: ChatRequest, policy: Policy | None, deadline: float | None
    ) -> Response:
        """The chat completion itself (``chat`` as it goes upstream); an event stream goes
        through its observer."""
        response = await attempts.answer(chat, self.config, self.seams(), deadline, policy)
        if response.stream is not None and is_event_stream(response.headers):
            observed(response, "chat", self.hooks("chat"), self.config.max_event_bytes)
        return response

    def seams(self) -> Seams:
        """What the attempt loop needs from outside core."""
        return Seams(self.fetch, self.clock, self.sleep, self.random, self.new_id)


class _Sequence:
    """Request ids when the adapter gives no source: unique within the process."""

    def __init__(self) -> None:
        self._next = 0

    def __call__(self) -> str:
        self._next += 1
        return f"req-{self._next:012d}"


def _counting(fetch: Fetch, log: RequestLog | None) -> Fetch:
    """The Fetch, counting calls into the log record's attempts."""
    return fetch if log is None else _CountingFetch(fetch, log)


class _CountingFetch:
    __slots__ = ("_fetch", "_log")

    def __init__(self, fetch: Fetch, log: RequestLog) -> None:
        self._fetch = fetch
        self._log = log

    async def __call__(self, request: FetchRequest) -> FetchResponse:
        self._log.attempts += 1
        return await self._fetch(request)

    async def aclose(self) -> None:
        await self._fetch.aclose()


# Response headers that carry the upstream's own request id.
_UPSTREAM_IDS = frozenset({"x-request-id", "request-id", "x-goog-request-id"})


def _note_headers(log: RequestLog, headers: list[tuple[str, str]]) -> None:
    """What the answer's headers tell the log line: the upstream's request id, the cache's
    outcome, the attempts made and the target that answered, a repaired request."""
    for name, value in headers:
        if name == "x-edgerelay-cache":
            log.cache = value  # HIT, MISS, BYPASS or REFRESH (core.cache)
        elif name == "x-edgerelay-attempts" and value.isdigit():
            log.attempts = int(value)
        elif name == "x-edgerelay-target":
            provider, _, model = value.partition("/")
            log.provider, log.model_used = provider, model or None
        elif name == "x-edgerelay-repaired":
            log.repaired = value
        elif log.upstream_request_id is None and name in _UPSTREAM_IDS and log.status < 500:
            log.upstream_request_id = value[:128]
