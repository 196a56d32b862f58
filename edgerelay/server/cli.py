"""``edgerelay serve``: the local/container server on uvicorn (uvloop + httptools)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from edgerelay.core import ConfigError, config_error, registry
from edgerelay.server import gc_tuning


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgerelay", description="AI-API gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway on uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument(
        "--access-log",
        action="store_true",
        help="same as EDGERELAY_LOG=all (the default): one JSON line per request on stderr, "
        "or in EDGERELAY_LOG_FILE (never the query, headers or body)",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="on SIGTERM/Ctrl-C, end responses still open after this long (default: 5)",
    )
    serve.add_argument(
        "--header-timeout",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="close a connection that has not sent a request's headers within this long "
        "(default: 10)",
    )
    serve.add_argument(
        "--limit-concurrency",
        type=int,
        default=1000,
        metavar="N",
        help="answer 503 to connections beyond this many open ones (default: 1000)",
    )
    serve.add_argument(
        "--forwarded-allow-ips",
        default=None,
        metavar="IPS",
        help="addresses of a trusted reverse proxy whose X-Forwarded-For names the client "
        "(comma list, or *); by default the peer address is the client (rate limits key on it)",
    )
    args = parser.parse_args(argv)

    from edgerelay.server.asgi import create_app

    if args.access_log:  # the older switch: every request's line
        os.environ["EDGERELAY_LOG"] = "all"
    try:
        app = create_app()
        tune_gc = gc_tuning.wanted(os.environ)
    except ConfigError as exc:
        print(f"edgerelay: {config_error(exc).message}", file=sys.stderr)
        return 2

    refusal = anonymous_refusal(app.gateway.config, args.host)
    if refusal is not None:
        print(f"edgerelay: {refusal}", file=sys.stderr)
        return 2

    import uvicorn

    print(banner(app.gateway.config, args.host, args.port), file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        lifespan="on",
        access_log=False,  # uvicorn's prints the query string; ours (EDGERELAY_LOG) does not
        log_level="warning",
        # Trust no X-Forwarded-For unless a proxy is named: a spoofed one must not reset a
        # per-address limit. uvicorn rewrites the client address only for a named peer.
        proxy_headers=args.forwarded_allow_ips is not None,
        forwarded_allow_ips=args.forwarded_allow_ips,
        server_header=False,
        # Without it uvicorn waits for every open stream to end, however long: one idle client
        # kept the server from stopping. Cancelled requests abort their upstream request.
        timeout_graceful_shutdown=args.graceful_timeout,
        **connection_limits(args.header_timeout, args.limit_concurrency),
    )
    redact_logs(app.gateway.redactor)  # after uvicorn.Config: it sets up the log handlers
    logging.getLogger("uvicorn.error").addFilter(not_a_cancelled_response)
    server = uvicorn.Server(config)
    if tune_gc:
        gc_tuning.raise_threshold()
        app.on_ready = gc_tuning.freeze_start_up
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    return 0 if server.started else 3  # 3, as uvicorn.run: the port could not be bound


def not_a_cancelled_response(record) -> bool:
    """A logging filter for uvicorn's "Exception in ASGI application" when the exception is
    the shutdown's cancellation: the app has already logged one line for that response."""
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, asyncio.CancelledError)


def redact_logs(redactor) -> None:
    """Every log line, ours and uvicorn's, tracebacks included, cleaned of the configured
    secrets before it is written."""
    ours = logging.getLogger("edgerelay")
    if not ours.handlers:  # otherwise logging's last-resort handler writes, unfiltered
        ours.addHandler(logging.StreamHandler())
        ours.propagate = False
    for name in ("edgerelay", "uvicorn", "uvicorn.error", "uvicorn.access", ""):
        for handler in logging.getLogger(name).handlers:
            handler.addFilter(redactor)


def connection_limits(header_timeout: float, limit_concurrency: int) -> dict:
    """uvicorn options for the header deadline and the connection cap (server/protocol.py),
    and no WebSocket protocol: the gateway has no WebSocket route, so an upgrade request is
    answered as plain HTTP (uvicorn's WebSocket side answered it a bare 500), and not loading
    the ``websockets`` library saves 15-40 ms of start-up."""
    from edgerelay.server.protocol import guarded_protocol

    return {
        "http": guarded_protocol(header_timeout, limit_concurrency),
        "limit_concurrency": limit_concurrency,
        "ws": "none",
    }


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def banner(config, host: str, port: int) -> str:
    """What a person starting the server wants to know: where, and which providers answer."""
    ready = []
    for name, provider in config.providers.items():
        if provider.api_key or not provider.key_required:
            # A kind with a fixed list of models (the mock) is named by its models.
            fixed = registry.spec(provider.kind).fixed_models
            ready += [f"{name}/{m}" for m in fixed] if fixed else [name]
    providers = ", ".join(ready)
    lines = [
        f"edgerelay: serving on http://{host}:{port} (demo page at /)",
        f"edgerelay: providers ready: {providers}",
    ]
    identity = config.identity
    if not identity.enabled:
        lines.append(
            "edgerelay: no client identity configured: anyone who can reach this address may "
            "call models (fine on loopback; see README, Securing a deployment)"
        )
    elif identity.allow_anonymous:
        lines.append(
            "edgerelay: EDGERELAY_ALLOW_ANONYMOUS=true: callers without a credential "
            "are served under the anonymous policy"
        )
    return "\n".join(lines)


def anonymous_refusal(config, host: str) -> str | None:
    """Why the server must not start: reachable beyond this machine, no identity configured and
    anonymous use not allowed explicitly. None when it may start."""
    identity = config.identity
    if identity.enabled or identity.allow_anonymous or is_loopback(host):
        return None
    return (
        f"refusing to serve {host} with no client identity configured: anyone reaching it "
        "could spend the provider keys. Set EDGERELAY_JWKS_URL, EDGERELAY_JWT_SECRET, "
        "EDGERELAY_CLIENT_KEYS or EDGERELAY_TURNSTILE_SECRET (with EDGERELAY_SESSION_SECRET), "
        "or EDGERELAY_ALLOW_ANONYMOUS=true to serve anyone."
    )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
