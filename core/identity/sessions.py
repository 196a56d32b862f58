"""Turnstile sessions: a public page whose users do not sign in proves it is a browser with a
Turnstile token, and gets a short-lived gateway session (an HS256 JWT with ``iss`` =
``edgerelay-session``) to call models with under the ``anonymous`` policy.

``POST /v1/sessions`` with ``{"turnstile_token": "..."}`` checks the token against siteverify
(through the Fetch seam) and answers ``{"token", "expires_at"}``. ``GET /v1/sessions`` tells a
page whether sessions are on and which public site key renders the widget.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .. import safejson
from ..errors import GatewayError
from ..fetch import Fetch, FetchError, FetchRequest
from ..http import Request, Response
from .policy import ANONYMOUS
from .settings import IdentitySettings
from .tokens import mint_hs256

SESSION_ISSUER = "edgerelay-session"
_JSON = ("content-type", "application/json")
_MAX_TURNSTILE_TOKEN = 4096  # Cloudflare's tokens are at most 2048 characters
_MAX_VERIFY_BODY = 64 * 1024
_VERIFY_TIMEOUT = 10.0


def describe(settings: IdentitySettings) -> Response:
    """``GET /v1/sessions``: public facts only (the site key is meant for pages)."""
    body = {
        "enabled": settings.sessions,
        "site_key": settings.turnstile_site_key if settings.sessions else None,
    }
    return Response(200, [_JSON], json.dumps(body, separators=(",", ":")).encode())


async def create(
    request: Request,
    settings: IdentitySettings,
    fetch: Fetch,
    clock: Callable[[], float],
    new_id: Callable[[], str],
) -> Response:
    """``POST /v1/sessions``: a session token for a valid Turnstile token."""
    if not settings.sessions:
        raise GatewayError(
            404,
            "Sessions are off: set EDGERELAY_TURNSTILE_SECRET and EDGERELAY_SESSION_SECRET.",
            code="sessions_disabled",
        )
    token = _turnstile_token(request.body)
    outcome = await _siteverify(token, request.client_ip, settings, fetch)
    if outcome.get("success") is not True:
        raise _invalid()
    if settings.turnstile_hostnames is not None and (
        outcome.get("hostname") not in settings.turnstile_hostnames
    ):
        raise _invalid()
    now = int(clock())
    expires = now + settings.session_ttl
    claims = {
        "iss": SESSION_ISSUER,
        "sub": new_id(),
        "iat": now,
        "exp": expires,
        "edgerelay_policy": ANONYMOUS,
    }
    assert settings.session_secret is not None  # settings.sessions says so
    body = {"token": mint_hs256(claims, settings.session_secret), "expires_at": expires}
    return Response(
        200,
        [_JSON, ("cache-control", "no-store")],
        json.dumps(body, separators=(",", ":")).encode(),
    )


def _turnstile_token(raw: bytes) -> str:
    try:
        body = safejson.loads(raw)
    except (ValueError, UnicodeDecodeError):
        body = None
    token = body.get("turnstile_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token or len(token) > _MAX_TURNSTILE_TOKEN:
        raise GatewayError(
            400,
            'The body must be {"turnstile_token": "<token from the Turnstile widget>"}.',
            param="turnstile_token",
        )
    return token


async def _siteverify(
    token: str, remote_ip: str | None, settings: IdentitySettings, fetch: Fetch
) -> dict:
    # siteverify takes JSON as well as a form; JSON needs no URL encoder in core.
    payload = {"secret": settings.turnstile_secret, "response": token}
    if remote_ip:
        payload["remoteip"] = remote_ip
    request = FetchRequest(
        "POST",
        settings.turnstile_verify_url,
        {"content-type": "application/json", "accept": "application/json"},
        json.dumps(payload).encode(),
        timeout=_VERIFY_TIMEOUT,
    )
    try:
        response = await fetch(request)
        try:
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > _MAX_VERIFY_BODY:
                    break
        finally:
            await response.aclose()
    except FetchError:
        raise _verifier_down() from None
    if response.status != 200:
        raise _verifier_down()
    try:
        outcome = safejson.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _verifier_down() from None
    if not isinstance(outcome, dict):
        raise _verifier_down()
    return outcome


def _invalid() -> GatewayError:
    return GatewayError(
        401, "The Turnstile token is invalid or expired.", code="invalid_turnstile_token"
    )


def _verifier_down() -> GatewayError:
    return GatewayError(
        503,
        "Turnstile could not be asked (EDGERELAY_TURNSTILE_VERIFY_URL); try again.",
        type="service_unavailable",
        code="turnstile_unavailable",
    )
