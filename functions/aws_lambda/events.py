"""Lambda HTTP events in, core ``Request`` out; core ``Response`` metadata back to Lambda's shapes.

Three event shapes reach the gateway: API Gateway HTTP API payload 2.0 and Function URLs (both
``"version": "2.0"``, ``rawPath``), and API Gateway REST API payload 1.0 (``httpMethod``,
``path``). Anything else is not an HTTP request: ``EventError``. Bad input inside a real HTTP
event (a body that is not valid base64) is the client's mistake and is answered with a 400, never
a traceback: ``HttpEvent.error``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from urllib.parse import urlencode

from edgerelay.core import GatewayError, Request

# The prelude of a streamed HTTP response: JSON metadata, then this delimiter, then the body.
PRELUDE_DELIMITER = b"\x00" * 8


class EventError(ValueError):
    """The invocation's payload is not an HTTP event this gateway understands."""


@dataclass(slots=True)
class HttpEvent:
    version: str  # "2.0" (HTTP API, Function URL) or "1.0" (REST API)
    request: Request
    error: GatewayError | None = None  # set when the request is malformed: answer with it


def decode_event_bytes(raw: bytes) -> HttpEvent:
    """Decode the Runtime API's invocation body (JSON text)."""
    try:
        event = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise EventError("The invocation payload is not JSON.") from None
    return decode_event(event)


def decode_event(event: object) -> HttpEvent:
    if not isinstance(event, dict):
        raise EventError("The invocation payload is not a JSON object.")
    if event.get("version") == "2.0" and isinstance(event.get("rawPath"), str):
        return _decode_v2(event)
    if isinstance(event.get("httpMethod"), str) and isinstance(event.get("path"), str):
        return _decode_v1(event)
    raise EventError(
        "Not an HTTP event: expected an API Gateway (payload 1.0 or 2.0) or Function URL event."
    )


def _decode_v2(event: dict) -> HttpEvent:
    context = _dict(event.get("requestContext"))
    http = _dict(context.get("http"))
    method = http.get("method")
    if not isinstance(method, str) or not method:
        raise EventError("The 2.0 event has no requestContext.http.method.")
    headers = {k.lower(): v for k, v in _dict(event.get("headers")).items() if isinstance(v, str)}
    # Payload 2.0 moves Cookie headers into a list of their own; put them back for core.
    cookies = event.get("cookies")
    cookies = [c for c in cookies if isinstance(c, str)] if isinstance(cookies, list) else []
    if cookies:
        headers["cookie"] = "; ".join(cookies)
    query = event.get("rawQueryString")
    source_ip = http.get("sourceIp")
    request = Request(
        method.upper(),
        event["rawPath"] or "/",
        query if isinstance(query, str) else "",
        headers,
        b"",
        source_ip if isinstance(source_ip, str) else None,
    )
    return _with_body(HttpEvent("2.0", request), event)


def _decode_v1(event: dict) -> HttpEvent:
    headers: dict[str, str] = {}
    multi = _dict(event.get("multiValueHeaders"))
    if multi:
        for name, values in multi.items():
            if isinstance(values, list):
                joined = ", ".join(v for v in values if isinstance(v, str))
                headers[name.lower()] = joined
    else:
        for name, value in _dict(event.get("headers")).items():
            if isinstance(value, str):
                headers[name.lower()] = value
    # REST APIs hand over decoded query values; core wants the raw string, so re-encode.
    pairs: list[tuple[str, str]] = []
    multi_query = _dict(event.get("multiValueQueryStringParameters"))
    if multi_query:
        for name, values in multi_query.items():
            for value in values if isinstance(values, list) else ():
                if isinstance(value, str):
                    pairs.append((name, value))
    else:
        for name, value in _dict(event.get("queryStringParameters")).items():
            if isinstance(value, str):
                pairs.append((name, value))
    identity = _dict(_dict(event.get("requestContext")).get("identity"))
    source_ip = identity.get("sourceIp")
    request = Request(
        event["httpMethod"].upper(),
        event["path"] or "/",
        urlencode(pairs, errors="surrogatepass"),  # as the body: a JSON string may hold one
        headers,
        b"",
        source_ip if isinstance(source_ip, str) else None,
    )
    return _with_body(HttpEvent("1.0", request), event)


def _with_body(decoded: HttpEvent, event: dict) -> HttpEvent:
    body = event.get("body")
    if body is None:
        return decoded
    if not isinstance(body, str):
        decoded.error = GatewayError(400, "The request body could not be read.")
        return decoded
    if event.get("isBase64Encoded"):
        try:
            decoded.request.body = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            decoded.error = GatewayError(400, "The request body is not valid base64.")
    else:
        # API Gateway hands text bodies over as str; surrogates cannot come from valid UTF-8.
        decoded.request.body = body.encode("utf-8", "surrogatepass")
    return decoded


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def split_headers(headers: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    """Lambda's response shapes take one value per header name and cookies apart."""
    single: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        key = name.lower()
        if key == "set-cookie":
            cookies.append(value)
        elif key in single:
            single[key] += ", " + value
        else:
            single[key] = value
    return single, cookies


def prelude(status: int, headers: list[tuple[str, str]]) -> bytes:
    """The JSON metadata and NUL delimiter that open a streamed HTTP response."""
    single, cookies = split_headers(headers)
    meta = {"statusCode": status, "headers": single, "cookies": cookies}
    return json.dumps(meta, separators=(",", ":")).encode() + PRELUDE_DELIMITER


_TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml")


def proxy_response(version: str, status: int, headers: list[tuple[str, str]], body: bytes) -> dict:
    """The dict a buffered proxy integration returns: text bodies as str, others base64."""
    single, cookies = split_headers(headers)
    content_type = single.get("content-type", "").lower()
    text = content_type.startswith(_TEXT_TYPES) or content_type.endswith("+json")
    if not body:
        payload, encoded = "", False
    elif text:
        try:
            payload, encoded = body.decode("utf-8"), False
        except UnicodeDecodeError:
            payload, encoded = base64.b64encode(body).decode("ascii"), True
    else:
        payload, encoded = base64.b64encode(body).decode("ascii"), True
    result: dict = {
        "statusCode": status,
        "headers": single,
        "body": payload,
        "isBase64Encoded": encoded,
    }
    if cookies:
        if version == "2.0":
            result["cookies"] = cookies
        else:  # REST APIs take repeated headers only through multiValueHeaders
            result["multiValueHeaders"] = {"set-cookie": cookies}
    return result
