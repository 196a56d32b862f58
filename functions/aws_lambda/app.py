"""Build the gateway once per Lambda process, as ``server/asgi.py`` does for the server: config
from the environment, the httpx ``Fetch`` (one client, reused by every warm invocation), the
wall clock and random ids injected."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from edgerelay.core import Gateway, load_config, new_id
from edgerelay.core.fetch import Fetch

from .settings import LambdaSettings, load_settings


def read_file(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


@dataclass(slots=True)
class LambdaApp:
    gateway: Gateway
    fetch: Fetch
    settings: LambdaSettings


def create_app(
    env: Mapping[str, str] | None = None,
    fetch: Fetch | None = None,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> LambdaApp:
    """Raises ``ConfigError`` naming the bad setting. ``sleep`` waits between retries."""
    env = os.environ if env is None else env
    config = load_config(env, read_file)
    settings = load_settings(env)
    if fetch is None:
        # Imported here so a bad configuration is reported without paying for httpx first.
        from edgerelay.transports.httpx_fetch import HttpxFetch

        fetch = HttpxFetch(trust_env=config.trust_env)
    verifier = None
    if config.identity is not None and config.identity.jwks_url:
        # Only then: cryptography's import would otherwise cost every cold start.
        from edgerelay.transports.signatures import CryptographyVerifier

        verifier = CryptographyVerifier()
    store = None
    if env.get("EDGERELAY_STORE"):  # else stored responses last as long as the warm instance
        from edgerelay.stores.select import response_store_for

        store = response_store_for(config, env)
    # The response cache: Redis with EDGERELAY_STORE, else this warm instance's memory.
    from edgerelay.stores.cache_select import cache_store_for
    from edgerelay.stores.select import store_for

    # One store per process: a warm invocation reuses its Redis connections.
    limit_store = store_for(config, env, memory_ok=False)
    gateway = Gateway(
        config,
        fetch,
        clock=time.time,
        new_id=new_id,
        verifier=verifier,
        target="lambda",
        response_store=store,
        sleep=sleep,
        random=random.random,
        cache_store=cache_store_for(config, env),
        new_request_id=new_id,
        limit_store=limit_store,
    )
    redact_logs(gateway.redactor)
    return LambdaApp(gateway, fetch, settings)


def redact_logs(redactor) -> None:
    """Lambda ships every log line to CloudWatch: the configured secrets are taken out of each
    (tracebacks included) by the handlers that write them, the runtime's own and ours."""
    import logging

    for name in ("", "edgerelay"):
        for handler in logging.getLogger(name).handlers:
            if redactor not in handler.filters:
                handler.addFilter(redactor)
