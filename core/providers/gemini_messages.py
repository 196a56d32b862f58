"""OpenAI ``messages`` as Gemini ``contents`` (roles user / model) and ``systemInstruction``.

Gemini answers a function call with a ``functionResponse`` that names the function, where OpenAI
gives only the ``tool_call_id``: the name is looked up in the earlier assistant turn whose
``tool_calls`` carry that id. Thought signatures the client sends back in ``reasoning_details``
go back onto the parts Gemini put them on (docs/extensions.md).
"""

from __future__ import annotations

from .. import safejson
from ..chat import data_url, image_url, part_text, tool_call_arguments
from ..errors import bad_request
from .gemini_response import FORMAT

_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}
_IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
    "heif": "image/heif",
}


# Google's documented placeholder for a function call whose thought signature was lost.
SKIP_SIGNATURE = "skip_thought_signature_validator"


def to_contents(messages: list, model: str) -> tuple[list, list]:
    """``(systemInstruction parts, contents)``. System and developer messages, wherever they
    stand, become the one system instruction Gemini has. Consecutive messages of one role form
    one turn, so several tool results (and a user message right after them) answer one model
    turn, and the turns alternate as Gemini expects. Thought signatures go back only if
    ``model`` produced them."""
    system: list = []
    contents: list = []
    names: dict = {}  # tool_call_id -> function name, from the assistant turns seen so far
    for i, message in enumerate(messages):
        role = message["role"]
        if role in ("system", "developer"):
            system += _text_parts(message.get("content"), i)
            continue
        if role in ("tool", "function"):
            role, parts = "user", [_function_response(message, i, names)]
        elif role == "user":
            parts = _user_parts(message.get("content"), i)
        else:
            role, parts = "model", _model_parts(message, i, names, model)
            if not parts:  # Gemini rejects a turn without parts
                continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


def _text_parts(content: object, i: int) -> list:
    if isinstance(content, str):
        return [{"text": content}]
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind not in ("text", "refusal"):
                raise bad_request(
                    f"`messages[{i}].content[{j}]` must be a text part here.",
                    param=f"messages[{i}].content[{j}]",
                )
            parts.append({"text": part_text(part, kind, f"messages[{i}].content[{j}]")})
        return parts
    if content is None:
        return []
    raise bad_request(f"`messages[{i}].content` must be a string or an array.", param=_p(i))


def _user_parts(content: object, i: int) -> list:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list) or not content:
        raise bad_request(f"`messages[{i}].content` must be a string or an array.", param=_p(i))
    parts: list[dict] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        param = f"messages[{i}].content[{j}]"
        if kind == "text":
            parts.append({"text": part_text(part, "text", param)})
        elif kind == "image_url":
            url = image_url(part, param)
            if url.startswith("data:"):
                parts.append({"inlineData": _inline(url, param + ".image_url.url")})
            else:
                # Gemini fetches only the URLs it supports (its Files API, YouTube, ...);
                # for others Google's own 400 comes back to the client.
                ext = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
                data: dict = {"fileUri": url}
                if ext in _IMAGE_TYPES:
                    data = {"mimeType": _IMAGE_TYPES[ext], "fileUri": url}
                parts.append({"fileData": data})
        elif kind == "input_audio":
            audio = part.get("input_audio")
            audio = audio if isinstance(audio, dict) else {}
            fmt = audio.get("format")
            mime = _AUDIO_TYPES.get(fmt) if isinstance(fmt, str) else None
            if mime is None or not isinstance(audio.get("data"), str):
                raise bad_request(
                    f"`{param}.input_audio` needs `data` and a format of wav or mp3.", param=param
                )
            parts.append({"inlineData": {"mimeType": mime, "data": audio["data"]}})
        elif kind == "file":
            file = part.get("file")
            file_data = file.get("file_data") if isinstance(file, dict) else None
            if not isinstance(file_data, str):
                raise bad_request(f"`{param}.file` needs `file_data` (a data: URL).", param=param)
            parts.append({"inlineData": _inline(file_data, param + ".file.file_data")})
        else:
            raise bad_request(f"`{param}` has an unsupported type {kind!r}.", param=param)
    return parts


def _inline(url: str, where: str) -> dict:
    mime, data = data_url(url, where)
    return {"mimeType": mime, "data": data}


def _model_parts(message: dict, i: int, names: dict, model: str) -> list:
    text = "".join(p["text"] for p in _text_parts(message.get("content"), i))
    parts: list = [{"text": text}] if text else []
    signatures = _signatures(message.get("reasoning_details"), model)
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise bad_request(
            f"`messages[{i}].tool_calls` must be an array.", param=_p(i, "tool_calls")
        )
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        calls = [*calls, {"type": "function", "function": legacy}]
    elif legacy is not None:
        raise bad_request(
            f"`messages[{i}].function_call` must be an object.", param=_p(i, "function_call")
        )
    for j, call in enumerate(calls):
        param = f"messages[{i}].tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            raise bad_request(f"`{param}.function.name` is required.", param=param)
        args = tool_call_arguments(call, param)
        part = {"functionCall": {"name": name, "args": args}}
        call_id = call.get("id")
        if isinstance(call_id, str):
            names[call_id] = name
            if call_id in signatures:
                part["thoughtSignature"] = signatures[call_id]
        parts.append(part)
    if None in signatures and parts and "text" in parts[0]:
        parts[0]["thoughtSignature"] = signatures[None]  # a signature that came on text
    return parts


def _signatures(details: object, model: str) -> dict:
    """Gemini thought signatures from ``reasoning_details``, by tool call id (None: on text).
    A signature is valid only for the model that made it: items of another ``model`` are
    left out (items without one predate the tag and are kept)."""
    found: dict = {}
    if isinstance(details, list):
        for d in details:
            if (
                isinstance(d, dict)
                and d.get("type") == "reasoning.encrypted"
                and d.get("format") == FORMAT
                and isinstance(d.get("data"), str)
                and isinstance(d.get("id"), str | None)
                and d.get("model", model) == model
            ):
                found.setdefault(d.get("id"), d["data"])
    return found


def sign_current_turn(contents: list) -> bool:
    """Put ``SKIP_SIGNATURE`` on the first function call of each model step of the current
    turn that has no signature (Gemini 3 validates those; the first of parallel calls is the one
    that carries it). The current turn starts after the last user content that is more than
    function responses. Real signatures are never replaced. True if any was placed."""
    start = 0
    for i, content in enumerate(contents):
        if content["role"] == "user" and any("functionResponse" not in p for p in content["parts"]):
            start = i + 1
    placed = False
    for content in contents[start:]:
        if content["role"] != "model":
            continue
        first = next((p for p in content["parts"] if "functionCall" in p), None)
        if first is not None and "thoughtSignature" not in first:
            first["thoughtSignature"] = SKIP_SIGNATURE
            placed = True
    return placed


def _function_response(message: dict, i: int, names: dict) -> dict:
    if message["role"] == "function":
        name = message.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request(f"`messages[{i}].name` is required.", param=_p(i, "name"))
    else:
        call_id = message.get("tool_call_id")
        name = names.get(call_id) if isinstance(call_id, str) else None
        if name is None:
            raise bad_request(
                f"`messages[{i}].tool_call_id` ({call_id!r}) matches no tool call of an earlier "
                "assistant message; Gemini needs the function name from it.",
                param=_p(i, "tool_call_id"),
            )
    text = "".join(p["text"] for p in _text_parts(message.get("content"), i))
    response = None
    if text.lstrip()[:1] == "{":
        try:
            response = safejson.loads(text)
        except ValueError:
            pass
    if not isinstance(response, dict):
        response = {"output": text}  # the key Gemini documents for a plain function output
    return {"functionResponse": {"name": name, "response": response}}


def _p(i: int, field: str = "content") -> str:
    return f"messages[{i}].{field}"
