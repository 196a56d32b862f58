"""OpenAI and every OpenAI-compatible upstream: the request goes through nearly untouched and
the answer comes back byte for byte (no parsing, no re-serialising)."""

from __future__ import annotations

from collections.abc import Mapping

from .. import safejson
from ..chat import ChatRequest, dumps
from ..errors import GatewayError
from ..fetch import FetchRequest
from ..routing import Route


def build_request(chat: ChatRequest, route: Route, raw: bytes, timeout: float) -> FetchRequest:
    # Re-encode only when the upstream must see another model name (prefix or alias).
    body = raw if route.model == chat.model else dumps({**chat.body, "model": route.model})
    headers = {"content-type": "application/json", "accept": "application/json"}
    if chat.stream:
        headers["accept"] = "text/event-stream"
    provider = route.provider
    if provider.api_key:
        headers["authorization"] = "Bearer " + provider.api_key
    return FetchRequest(
        "POST", provider.base_url + "/chat/completions", headers, body, timeout=timeout
    )


def translate_error(status: int, body: bytes, headers: Mapping[str, str]) -> GatewayError:
    """An upstream error in OpenAI's format keeps its message, type and code."""
    message, kind, code, param = f"The upstream answered with status {status}.", None, None, None
    try:
        error = safejson.loads(body).get("error")
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        error = None
    if isinstance(error, dict):
        message = str(error.get("message") or message)
        kind, code, param = error.get("type"), error.get("code"), error.get("param")
    elif isinstance(error, str):
        message = error
    return GatewayError(status, message, type=kind, code=code, param=param)
