"""JSON in and out: ``loads`` with a nesting limit and finite numbers only, for JSON from
clients and upstreams, and ``dumps``, the one compact encoder every answer and chunk the gateway
writes goes through (never ``NaN`` or ``Infinity``, which are not JSON).

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
# allow_nan=False: a non-finite number raises instead of being written as invalid JSON (loads
# lets none in, so only a bug of ours could reach it).
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


class TooDeep(ValueError):
    """JSON nested deeper than ``MAX_DEPTH``."""


class NonFinite(ValueError):
    """A number JSON cannot carry: ``NaN``/``Infinity`` (not JSON at all, though Python's
    parser takes them) or a literal too large for a double (``1e400``), which would parse to
    infinity and be written back as ``Infinity``, invalid JSON."""


def loads(data: str | bytes, **options):
    """``json.loads``; raises ``TooDeep`` (a ValueError, as for any invalid JSON) first when
    ``data`` nests deeper than ``MAX_DEPTH``, and ``NonFinite`` for a number that is not
    finite."""
    if depth(data) > MAX_DEPTH:
        raise TooDeep(f"JSON nested deeper than {MAX_DEPTH} levels")
    if options:
        options.setdefault("parse_float", _finite)
        options.setdefault("parse_constant", _no_constant)
        return json.loads(data, **options)
    # json.loads without a decoder built per call (it was most of the cost of parsing the
    # many small tool-call argument strings a request may carry); same rules for bytes and BOMs.
    if not isinstance(data, str):
        data = data.decode(json.detect_encoding(data), "surrogatepass")
    elif data.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
    return _decode(data)


def _finite(text: str) -> float:
    value = float(text)
    if value - value != 0:  # inf - inf is nan; every finite number minus itself is 0
        raise NonFinite(f"{text[:32]} is too large for a JSON number")
    return value


def _no_constant(name: str):
    raise NonFinite(f"{name} is not a JSON value")


_decode = json.JSONDecoder(parse_float=_finite, parse_constant=_no_constant).decode


def nonfinite_path(data: str | bytes) -> str:
    """Where in ``data`` the first non-finite number is, as ``a.b[2].c`` (for a 400 naming the
    field); ``""`` when it is the whole document. Only called once ``loads`` raised
    ``NonFinite``, so the second parse costs nothing on good requests."""
    found = json.loads(data, parse_float=_marker_if_infinite, parse_constant=_Marker)
    path = _find_marker(found, "")
    return path or ""


class _Marker:
    __slots__ = ()

    def __init__(self, _text: str) -> None:
        pass


def _marker_if_infinite(text: str):
    value = float(text)
    return _Marker(text) if value - value != 0 else value


def _find_marker(node: object, path: str) -> str | None:
    # Recursive: loads has checked the depth against MAX_DEPTH already.
    if isinstance(node, _Marker):
        return path
    if isinstance(node, dict):
        for key, value in node.items():
            found = _find_marker(value, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = _find_marker(value, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def depth(data: str | bytes) -> int:
    """How deep ``data`` nests, outside its strings; 0 whenever that cannot exceed MAX_DEPTH.
    Exact up to the first syntax error, where the decoder would stop, so never too low."""
    # The usual case: too few brackets to nest that deep at all (in any encoding).
    if _brackets(data) <= MAX_DEPTH:
        return 0
    raw = _unescaped_utf8(data)
    if raw is None:
        return 0  # json.loads fails to decode it before parsing anything
    outside = _outside_strings(raw)
    signs = memoryview(outside.translate(_SIGNS, _NOT_BRACKETS)).cast("b")
    return max(accumulate(signs), default=0)


def values_over(data: str | bytes, limit: int) -> bool:
    """Whether ``data`` holds more than ``limit`` JSON values (array elements and object
    members, counted by their commas, plus the arrays and objects themselves), found at C
    speed before anything is parsed: parsing and translating cost CPU per value, on an event
    loop every other request shares. Never true for a document within the limit."""
    commas = data.count(",") if isinstance(data, str) else data.count(b",")
    if commas + _brackets(data) <= limit:  # the usual case, strings included
        return False
    raw = _unescaped_utf8(data)
    if raw is None:
        return False  # json.loads fails to decode it before parsing anything
    # Between two strings of a valid document lies a comma, colon or bracket, and each colon
    # follows a key that a comma or "{" introduced: n strings bring at least (n - 1) / 3 of
    # the values counted here. So a document of that many strings is over the limit without
    # taking them out, which would cost an object per string (hundreds of ms for 10 MiB).
    if raw.count(b'"') > 2 * (3 * limit + 1) + 1:
        return True
    outside = _outside_strings(raw)
    return outside.count(b",") + outside.count(b"[") + outside.count(b"{") > limit


def _brackets(data: str | bytes) -> int:
    if isinstance(data, str):
        return data.count("[") + data.count("{")
    return data.count(b"[") + data.count(b"{")


def _unescaped_utf8(data: str | bytes) -> bytes | None:
    """``data`` as UTF-8 without its escaped backslashes and quotes, so that every quote left
    opens or closes a string; None if it cannot be decoded."""
    if isinstance(data, str):
        raw = data.encode("utf-8", "surrogatepass")
    else:
        encoding = json.detect_encoding(data)
        if encoding not in ("utf-8", "utf-8-sig"):  # UTF-16 or 32, as json.loads accepts
            try:
                raw = data.decode(encoding, "surrogatepass").encode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                return None
        else:
            raw = data
    return raw.replace(b"\\\\", b"").replace(b'\\"', b"")


def _outside_strings(raw: bytes) -> bytes:
    """What lies outside strings in ``_unescaped_utf8``'s output: the even pieces between quotes."""
    return b"".join(raw.split(b'"')[::2])


def dumps(obj: object) -> bytes:
    """Compact UTF-8 JSON, as answers and chunks are sent on the wire."""
    text = _encode(obj)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # A lone surrogate (JSON allows the escape "\ud83d" alone) has no UTF-8 form. It can only
        # sit inside a JSON string, where backslashreplace writes back the very same escape.
        return text.encode("utf-8", "backslashreplace")
