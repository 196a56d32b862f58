"""Edgerelay as a Cloudflare Python Worker: the ``Default`` entrypoint, nothing more.

Parsing, routing, translation and errors are core's; this module turns the Worker's request
into core's, calls ``Gateway.handle`` and gives core's answer back (see ``worker_io``). The
upstream is reached through ``js.fetch`` (``js_fetch``); JWT signatures are checked with the
runtime's WebCrypto (``webcrypto_verify``). Core is told this is the Worker target, so with no
identity configured it refuses anonymous model calls unless ``EDGERELAY_ALLOW_ANONYMOUS=true``.

Settings come from ``self.env``: vars (``[vars]`` in wrangler.toml) and secrets
(``npx wrangler secret put OPENAI_API_KEY``) under the same names as the environment variables
of the other platforms. A successful configuration, with the gateway built on it, is kept for
the isolate's life, keyed by the env object; a configuration error is not kept, so each request
answers 503 naming the setting until it is fixed (and a fixed var or secret is a new deployment
with a new env anyway).

Uploaded as the top-level module ``entry`` next to ``core/`` by workers/cloudflare/build.py,
which is why the sibling imports below are flat.
"""

from __future__ import annotations

import asyncio
import logging  # imported by asyncio already: free here
import random
import time

from js_fetch import CLIENT_SIGNAL, JsFetch
from kv_cache import cache_store_for
from limits_object import EdgerelayLimits, durable_objects_for  # noqa: F401
from request_log import respond
from webcrypto_verify import WebCryptoVerifier
from worker_io import REQUEST_CTX, WorkerEnv, keep_alive_here, to_core_request
from workers import WorkerEntrypoint

from edgerelay.core import (
    Config,
    ConfigError,
    Gateway,
    Response,
    config_error,
    error_response,
    load_config,
    new_id,
)
from edgerelay.core.observer import idle_timed

# (the env it came from, its gateway, EDGERELAY_ZERO_COPY)
_cached: tuple[object, Gateway, bool] | None = None
# One per isolate: it keeps imported JWKS keys across requests (importKey costs more than
# the verification itself), whichever configuration is current.
_verifier = WebCryptoVerifier()


# Waits between retries and their jitter (seams: the Pyodide tests record the waits).
sleep = asyncio.sleep
jitter = random.random


def config_for(env) -> Config:
    """The configuration for this env; raises ``ConfigError`` naming a bad setting."""
    return gateway_for(env).config


def gateway_for(env) -> Gateway:
    """The gateway for this env, built once per isolate and configuration: it keeps what
    identity caches between requests (JWKS keys, verified tokens). Raises ``ConfigError``."""
    return _settings_for(env)[0]


def _settings_for(env) -> tuple[Gateway, bool]:
    global _cached
    raw = getattr(env, "_env", env)  # the SDK wraps the JS env object in a new wrapper per call
    if _cached is not None and _cached[0] == raw:  # JS identity for JS objects
        return _cached[1], _cached[2]
    # No read_file: EDGERELAY_CONFIG must hold the TOML itself (a Worker has no files of ours).
    settings = WorkerEnv(env)
    config = load_config(settings)
    zero_copy = _zero_copy(settings.get("EDGERELAY_ZERO_COPY"))
    store, missing = cache_store_for(env, config, time.time, keep_alive_here)
    gateway = Gateway(
        config,
        JsFetch(),  # each call carries the current request's abort signal (CLIENT_SIGNAL)
        clock=time.time,
        new_id=new_id,
        verifier=_verifier,
        target="worker",  # a public target: anonymous model calls need an explicit opt-in
        # Streams are idle-timed (so pumped, not zero copy) unless the idle timeout is off.
        stream_hooks=(idle_timed,) if config.timeouts.idle else (),
        sleep=lambda seconds: sleep(seconds),  # looked up per call: tests replace them
        random=lambda: jitter(),
        cache_store=store,
        cache_missing=missing,
        cache_keep_alive=keep_alive_here,  # a shared call outlives the request that started it
        **durable_objects_for(env, config, new_id),  # limits, stored responses
    )
    redact_logs(gateway.redactor)
    _cached = (raw, gateway, zero_copy)
    return gateway, zero_copy


_LOG_HANDLER = "edgerelay-worker"


def redact_logs(redactor) -> None:
    """The Worker's log lines (``npx wrangler tail``) cleaned of the configured secrets,
    tracebacks included: the ``edgerelay`` logger writes through a handler of ours that this
    configuration's redactor filters (logging's last-resort handler, used without one, has no
    filters)."""
    logger = logging.getLogger("edgerelay")
    handler = next((h for h in logger.handlers if h.get_name() == _LOG_HANDLER), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.set_name(_LOG_HANDLER)
        logger.addHandler(handler)
        logger.propagate = False
    handler.filters = [redactor]  # only the current configuration's secrets


def _zero_copy(value: str | None) -> bool:
    """EDGERELAY_ZERO_COPY: pass an upstream's stream on untouched (true, the default) or
    through core's stream observer (false; see docs/cloudflare.md for what each costs)."""
    text = (value or "").strip().lower()
    if text in ("", "true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError("EDGERELAY_ZERO_COPY", "must be true or false")


def config_error_response(exc: ConfigError) -> Response:
    """core's 503 naming the setting (never its value), and the same line in the log."""
    error = config_error(exc)
    print(f"edgerelay: {error.message}")  # console.log: `npx wrangler tail` shows it
    return error_response(error)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        try:
            gateway, zero_copy = _settings_for(self.env)
        except ConfigError as exc:
            return respond(config_error_response(exc), self.ctx)
        # This request's task (and the pump task it starts) sees its own client signal, so a
        # client that leaves cancels its upstream request and no other.
        CLIENT_SIGNAL.set(getattr(getattr(request, "js_object", request), "signal", None))
        REQUEST_CTX.set(self.ctx)
        max_body = gateway.config.max_body_bytes
        inbound = await to_core_request(request, max_body, gateway.too_large_response)
        if isinstance(inbound, Response):  # already the answer (413, unreadable body)
            return respond(inbound, self.ctx)
        response = await gateway.handle(inbound)
        return respond(response, self.ctx, zero_copy=zero_copy)
