"""The ``messages`` of a Chat Completions request, checked once into a typed form that every
translating provider reads (``Message``, ``Part``, ``ToolCall``).

What OpenAI's own schema says is checked here, with one wording per error: content is a string
or an array of parts; a part's text is a string; an image URL is a string, and a ``data:`` URL is
base64; audio is wav or mp3; a file is a ``data:`` URL; a tool call is a named function whose
arguments are a JSON object; a tool message names its call; a function message its function.
What a provider cannot take (a part type, a URL scheme, a missing id) is that provider's own
400, raised by its translator. The OpenAI-compatible provider never reads these: it forwards the
client's bytes.
"""

from __future__ import annotations

from typing import NamedTuple

from . import safejson
from .errors import bad_request

# OpenAI input_audio formats -> media type.
AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}

# Part types of a user message that are checked here; any other is kept as it came
# (``Part.type``) for the provider to refuse in its own words.
_USER_TYPES = frozenset({"text", "image_url", "input_audio", "file"})
_TEXT_TYPES = ("text", "refusal")

# Built with tuple.__new__ and every field given: the generated __new__ (keywords, defaults)
# costs about twice as much, and a long conversation makes hundreds of these per request.
_new = tuple.__new__


class Part(NamedTuple):
    """One content part. ``type`` is the OpenAI part type as the client sent it: "text" and
    "refusal" carry ``text``; "image_url" a ``url``, or ``media_type`` and base64 ``data`` when it
    was a ``data:`` URL; "input_audio" and "file" ``media_type`` and ``data``. A user part of
    any other type (or not an object: ``type`` None) carries nothing: no provider maps it."""

    type: object
    text: str = ""
    url: str | None = None
    media_type: str = ""
    data: str = ""


class ToolCall(NamedTuple):
    """A function call of an assistant message, its arguments parsed to an object. ``id`` is
    None when the client sent none (or not a string)."""

    id: str | None
    name: str
    arguments: dict


class Message(NamedTuple):
    """One message, checked. ``position`` is its index in ``messages`` (for a provider's 400).
    ``content`` is the string the client sent, its parts, or None when absent (most messages
    are one string: kept as it is, no part is made for it). ``reasoning_details`` is kept as
    sent: each provider takes back only its own items."""

    position: int
    role: str
    content: str | tuple[Part, ...] | None
    tool_calls: tuple[ToolCall, ...] = ()
    function_call: ToolCall | None = None  # the legacy single call
    tool_call_id: str | None = None
    name: str | None = None
    reasoning_details: object = None

    def text(self) -> str:
        """Its text: the string, or its text and refusal parts joined."""
        content = self.content
        if isinstance(content, str):
            return content
        return "".join([part.text for part in content or ()])

    def parts(self) -> tuple[Part, ...]:
        """Its content as parts (a string is one text part; none is no part)."""
        content = self.content
        if isinstance(content, str):
            return (_new(Part, ("text", content, None, "", "")),)
        return content or ()


def normalise(messages: list) -> tuple[Message, ...]:
    """``messages`` (already known to be objects with a valid ``role``) checked; a 400 naming
    the exact field, e.g. ``messages[2].content[1].image_url.url``, for the first bad one."""
    return tuple([_message(i, message) for i, message in enumerate(messages)])


def _message(i: int, message: dict) -> Message:
    role = message["role"]
    content = message.get("content")
    if not isinstance(content, str):
        content = _content(content, i, role == "user")
    if role == "assistant":
        calls = message.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            where = f"messages[{i}].tool_calls"
            raise bad_request(f"`{where}` must be an array.", param=where)
        tool_calls = tuple([_call(call, i, j) for j, call in enumerate(calls)]) if calls else ()
        legacy = message.get("function_call")
        function_call = None
        if legacy is not None:
            where = f"messages[{i}].function_call"
            if not isinstance(legacy, dict):
                raise bad_request(f"`{where}` must be an object.", param=where)
            function_call = _function(legacy, None, where)
        details = message.get("reasoning_details")
        fields = (i, role, content, tool_calls, function_call, None, None, details)
        return _new(Message, fields)
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            where = f"messages[{i}].tool_call_id"
            raise bad_request(f"`{where}` is required.", param=where)
        return _new(Message, (i, role, content, (), None, call_id, None, None))
    if role == "function":
        name = message.get("name")
        if not isinstance(name, str) or not name:
            where = f"messages[{i}].name"
            raise bad_request(f"`{where}` is required.", param=where)
        return _new(Message, (i, role, content, (), None, None, name, None))
    return _new(Message, (i, role, content, (), None, None, None, None))


def _content(content: object, i: int, user: bool) -> tuple[Part, ...] | None:
    if content is None:
        return None
    if not isinstance(content, list):
        where = f"messages[{i}].content"
        raise bad_request(f"`{where}` must be a string or an array of parts.", param=where)
    parts = []
    for j, part in enumerate(content):
        # The common case first: a text part holding a string.
        kind = part.get("type") if isinstance(part, dict) else None
        text = part.get("text") if kind == "text" else None
        if isinstance(text, str):
            parts.append(_new(Part, ("text", text, None, "", "")))
        elif user and kind == "image_url" and isinstance(part, dict):
            parts.append(_image(part, i, j))
        elif user:
            parts.append(_user_part(part, kind, f"messages[{i}].content[{j}]"))
        else:
            parts.append(_text_part(part, kind, f"messages[{i}].content[{j}]"))
    return tuple(parts)


def _text_part(part: object, kind: object, where: str) -> Part:
    if kind not in _TEXT_TYPES or not isinstance(part, dict):
        raise bad_request(f"`{where}` must be a text part here.", param=where)
    return Part(kind, _text(part, kind, where))


def _text(part: dict, key: str, where: str) -> str:
    # A "refusal" part holds its text under "refusal"; absent is empty.
    value = part.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_request(f"`{where}.{key}` must be a string.", param=f"{where}.{key}")
    return value


def _image(part: dict, i: int, j: int) -> Part:
    # An image part: its URL, or the media type and data of a data: URL.
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if isinstance(url, str):
        if not url.startswith("data:"):
            return _new(Part, ("image_url", "", url, "", ""))
        media_type, data = _data(url)
        if media_type:
            return _new(Part, ("image_url", "", None, media_type, data))
    where = f"messages[{i}].content[{j}].image_url.url"
    if not isinstance(url, str):
        raise bad_request(f"`{where}` must be a string.", param=where)
    raise bad_request(f"`{where}` must be a base64 data: URL.", param=where)


def _user_part(part: object, kind: object, where: str) -> Part:
    # Text holding a string and images were taken by the caller (_content, _image).
    if kind not in _USER_TYPES or not isinstance(part, dict):
        return Part(kind)  # the provider's 400 names what it takes
    if kind == "text":
        return Part(kind, _text(part, "text", where))
    if kind == "input_audio":
        audio = part.get("input_audio")
        audio = audio if isinstance(audio, dict) else {}
        fmt = audio.get("format")
        audio_type = AUDIO_TYPES.get(fmt) if isinstance(fmt, str) else None
        audio_data = audio.get("data")
        if audio_type is None or not isinstance(audio_data, str):
            raise bad_request(
                f"`{where}.input_audio` needs `data` and a format of wav or mp3.", param=where
            )
        return _new(Part, (kind, "", None, audio_type, audio_data))
    file = part.get("file")
    file_data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(file_data, str):
        raise bad_request(f"`{where}.file` needs `file_data` (a data: URL).", param=where)
    media_type, data = data_url(file_data, where + ".file.file_data")
    return _new(Part, (kind, "", None, media_type, data))


def data_url(url: str, where: str) -> tuple[str, str]:
    """``(media type, base64 data)`` of a base64 ``data:`` URL; a 400 naming ``where``
    otherwise."""
    media_type, data = _data(url)
    if not media_type:
        raise bad_request(f"`{where}` must be a base64 data: URL.", param=where)
    return media_type, data


def _data(url: str) -> tuple[str, str]:
    # ("", "") unless a base64 data: URL. Sliced once: the data may be megabytes.
    comma = url.find(",") if url.startswith("data:") else -1
    media_type, *params = url[5:comma].split(";") if comma > 0 else ("",)
    if not (media_type and "base64" in params):
        return "", ""
    return media_type, url[comma + 1 :]


def _call(call: object, i: int, j: int) -> ToolCall:
    function = call.get("function") if isinstance(call, dict) else None
    if (
        not isinstance(call, dict)
        or not isinstance(function, dict)
        or (call.get("type", "function") != "function")
    ):
        where = f"messages[{i}].tool_calls[{j}]"
        raise bad_request(f"`{where}` must be a function tool call.", param=where)
    call_id = call.get("id")
    call_id = call_id if isinstance(call_id, str) else None
    name = function.get("name")
    arguments = function.get("arguments")
    if isinstance(name, str) and name and isinstance(arguments, str) and arguments:
        # The common case, inline: a long tool loop has hundreds of these.
        try:
            parsed = safejson.loads(arguments)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return _new(ToolCall, (call_id, name, parsed))
    return _function(function, call_id, f"messages[{i}].tool_calls[{j}].function")


def _function(function: dict, call_id: str | None, where: str) -> ToolCall:
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request(f"`{where}.name` must be a non-empty string.", param=where + ".name")
    arguments = _arguments(function.get("arguments"), where)
    return _new(ToolCall, (call_id, name, arguments))


def _arguments(arguments: object, function: str) -> dict:
    # A JSON object in a string, as OpenAI sends it; some clients send the object itself
    # (taken as it is); absent or blank is {}.
    if arguments is None:
        return {}
    parsed: object = arguments
    if isinstance(arguments, str):
        try:
            parsed = {} if not arguments or arguments.isspace() else safejson.loads(arguments)
        except ValueError:
            parsed = None
    if not isinstance(parsed, dict):
        where = function + ".arguments"
        raise bad_request(f"`{where}` must be a JSON object in a string.", param=where)
    return parsed
