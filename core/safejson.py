"""JSON in and out: ``loads`` with a nesting limit, for JSON from clients and upstreams, and
``dumps``, the one compact encoder every answer and chunk the gateway writes goes through.

The C JSON decoder recurses once per ``[`` or ``{``. CPython turns a very deep document into a
RecursionError, but under Pyodide (the Cloudflare Worker) the recursion exhausts the JavaScript
engine's stack first: ``[[[[…`` about 6000 deep is a fatal error that kills the interpreter, not
an exception. So the depth is measured, at C speed, before anything is parsed.
"""

from __future__ import annotations

import json
from itertools import accumulate

# Far deeper than any real request or answer (OpenAI allows 10 levels in a JSON schema), and
# far shallower than any platform's stack.
MAX_DEPTH = 256

_SIGNS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


# One encoder, built once: ``json.dumps`` with options builds a new one on every call.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class TooDeep(ValueError):
    """JSON nested deeper than ``MAX_DEPTH``."""


def loads(data: str | bytes, **options):
    """``json.loads``; raises ``TooDeep`` (a ValueError, as for any invalid JSON) first when
    ``data`` nests deeper than ``MAX_DEPTH``."""
    if depth(data) > MAX_DEPTH:
        raise TooDeep(f"JSON nested deeper than {MAX_DEPTH} levels")
    return json.loads(data, **options)


def depth(data: str | bytes) -> int:
    """How deep ``data`` nests, outside its strings; 0 whenever that cannot exceed MAX_DEPTH.
    Exact up to the first syntax error, where the decoder would stop, so never too low."""
    # The usual case: too few brackets to nest that deep at all (in any encoding).
    if isinstance(data, str):
        if data.count("[") + data.count("{") <= MAX_DEPTH:
            return 0
        raw = data.encode("utf-8", "surrogatepass")
    else:
        if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
            return 0
        encoding = json.detect_encoding(data)
        if encoding not in ("utf-8", "utf-8-sig"):  # UTF-16 or 32, as json.loads accepts
            try:
                raw = data.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                return 0  # json.loads fails to decode it before parsing anything
        else:
            raw = data
    # Drop escaped backslashes, then escaped quotes: every quote left opens or closes a string,
    # so the even pieces between quotes are what lies outside strings.
    raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(raw.split(b'"')[::2])
    signs = memoryview(outside.translate(_SIGNS, _NOT_BRACKETS)).cast("b")
    return max(accumulate(signs), default=0)


def dumps(obj: object) -> bytes:
    """Compact UTF-8 JSON, as answers and chunks are sent on the wire."""
    text = _encode(obj)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # A lone surrogate (JSON allows the escape "\ud83d" alone) has no UTF-8 form. It can only
        # sit inside a JSON string, where backslashreplace writes back the very same escape.
        return text.encode("utf-8", "backslashreplace")
