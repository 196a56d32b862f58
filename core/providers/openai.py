"""OpenAI and every OpenAI-compatible upstream: the request goes through nearly untouched and
the answer comes back byte for byte (no parsing, no re-serialising, no stream translator)."""

from __future__ import annotations

from collections.abc import Mapping

from .. import registry, safejson
from ..chat import ChatRequest
from ..config import Config
from ..errors import GatewayError
from ..fetch import FetchRequest
from ..routing import Route
from .base import ChatContext, Relay, StreamTranslator

relays_openai = True
local_upstream = None


def build_request(
    chat: ChatRequest, route: Route, config: Config, ctx: ChatContext
) -> FetchRequest:
    # Re-encode only when the upstream must see another model name (prefix or alias).
    body = chat.raw
    if route.model != chat.model:
        body = safejson.dumps({**chat.body, "model": route.model})
    headers = {"content-type": "application/json", "accept": "application/json"}
    if chat.stream:
        headers["accept"] = "text/event-stream"
    provider = route.provider
    headers.update(registry.key_headers(provider))
    url = provider.base_url + "/chat/completions"
    return FetchRequest("POST", url, headers, body, timeout=config.upstream_timeout)


def translate_response(body: bytes, route: Route, ctx: ChatContext) -> bytes:
    return body  # never called: the answer is relayed (relays_openai)


def stream_translator(route: Route, ctx: ChatContext) -> StreamTranslator:
    return Relay()  # never called: the stream is relayed (relays_openai)


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
