"""Checked chat messages (``chat_messages.Message``) as Gemini ``contents`` (roles user / model)
and ``systemInstruction``.

Gemini answers a function call with a ``functionResponse`` that names the function, where OpenAI
gives only the ``tool_call_id``: the name is looked up in the earlier assistant turn whose
``tool_calls`` carry that id. Thought signatures the client sends back in ``reasoning_details``
go back onto the parts Gemini put them on (docs/extensions.md).
"""

from __future__ import annotations

from .. import safejson
from ..chat_messages import Message
from ..errors import bad_request
from .gemini_response import FORMAT

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


def to_contents(messages: tuple[Message, ...], model: str) -> tuple[list, list]:
    """``(systemInstruction parts, contents)``. System and developer messages, wherever they
    stand, become the one system instruction Gemini has. Consecutive messages of one role form
    one turn, so several tool results (and a user message right after them) answer one model
    turn, and the turns alternate as Gemini expects. Thought signatures go back only if
    ``model`` produced them."""
    system: list = []
    contents: list = []
    names: dict = {}  # tool_call_id -> function name, from the assistant turns seen so far
    for message in messages:
        role = message.role
        if role in ("system", "developer"):
            system += [{"text": part.text} for part in message.parts()]
            continue
        if role in ("tool", "function"):
            role, parts = "user", [_function_response(message, names)]
        elif role == "user":
            parts = _user_parts(message)
        else:
            role, parts = "model", _model_parts(message, names, model)
            if not parts:  # Gemini rejects a turn without parts
                continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


def _user_parts(message: Message) -> list:
    content = message.content
    if isinstance(content, str):
        return [{"text": content}]
    if not content:  # Gemini refuses a turn without parts
        where = f"messages[{message.position}].content"
        raise bad_request(f"`{where}` must be a string or an array.", param=where)
    parts: list[dict] = []
    for j, part in enumerate(content):
        kind = part.type
        if kind == "text":
            parts.append({"text": part.text})
        elif kind == "image_url" and part.url is not None:
            # Gemini fetches only the URLs it supports (its Files API, YouTube, ...); for
            # others Google's own 400 comes back to the client.
            url = part.url
            ext = url.rsplit("?", 1)[0].rsplit(".", 1)[-1].lower()
            data: dict = {"fileUri": url}
            if ext in _IMAGE_TYPES:
                data = {"mimeType": _IMAGE_TYPES[ext], "fileUri": url}
            parts.append({"fileData": data})
        elif kind in ("image_url", "input_audio", "file"):  # inline: a data: URL, or audio
            parts.append({"inlineData": {"mimeType": part.media_type, "data": part.data}})
        else:
            where = f"messages[{message.position}].content[{j}]"
            raise bad_request(f"`{where}` has an unsupported type {kind!r}.", param=where)
    return parts


def _model_parts(message: Message, names: dict, model: str) -> list:
    text = message.text()
    parts: list = [{"text": text}] if text else []
    details = message.reasoning_details
    signatures = _signatures(details, model) if details else {}
    calls = message.tool_calls
    if message.function_call is not None:
        calls = (*calls, message.function_call)
    for call in calls:
        part = {"functionCall": {"name": call.name, "args": call.arguments}}
        if call.id is not None:
            names[call.id] = call.name
            if call.id in signatures:
                part["thoughtSignature"] = signatures[call.id]
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


def _function_response(message: Message, names: dict) -> dict:
    name = message.name
    if message.role == "tool":
        call_id = message.tool_call_id
        name = names.get(call_id)
        if name is None:
            where = f"messages[{message.position}].tool_call_id"
            raise bad_request(
                f"`{where}` ({call_id!r}) matches no tool call of an earlier assistant message; "
                "Gemini needs the function name from it.",
                param=where,
            )
    text = message.text()
    response = None
    if text.lstrip()[:1] == "{":
        try:
            response = safejson.loads(text)
        except ValueError:
            pass
    if not isinstance(response, dict):
        response = {"output": text}  # the key Gemini documents for a plain function output
    return {"functionResponse": {"name": name, "response": response}}
