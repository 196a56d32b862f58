"""Lambda HTTP events for the tests, from the recorded-shape fixtures in ``fixtures/``: an HTTP
API payload 2.0 event, a Function URL event (2.0, base64 body) and a REST API payload 1.0 event."""

from __future__ import annotations

import base64
import copy
import json
import pathlib

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
KINDS = ("http-api-v2", "function-url", "rest-api-v1")

_cache: dict[str, dict] = {}


def event(
    kind: str, body: dict | bytes | None = None, *, method: str = "POST", path: str = ""
) -> dict:
    """A copy of fixture ``kind`` carrying ``body`` (JSON-encoded if a dict)."""
    if kind not in _cache:
        _cache[kind] = json.loads((FIXTURES / f"{kind}.json").read_text())
    result = copy.deepcopy(_cache[kind])
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    if kind == "rest-api-v1":
        result["httpMethod"] = method
        result["requestContext"]["httpMethod"] = method
        if path:
            result["path"] = path
    else:
        result["requestContext"]["http"]["method"] = method
        if path:
            result["rawPath"] = path
            result["requestContext"]["http"]["path"] = path
    if raw is None:
        result["body"] = None if kind == "rest-api-v1" else ""
        result["isBase64Encoded"] = False
    elif result.get("isBase64Encoded"):
        result["body"] = base64.b64encode(raw).decode()
    else:
        result["body"] = raw.decode()
    return result


def chat(model: str = "mock/echo", text: str = "hello from lambda", stream: bool = True) -> dict:
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}
