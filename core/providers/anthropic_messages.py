"""OpenAI chat messages -> Anthropic's ``system`` and turns (docs/anthropic.md, "Request
fields"). Each refusal is a 400 naming the exact field, e.g. ``messages[2].content[1]``."""

from __future__ import annotations

from ..chat import data_url, image_url, part_text, tool_call_arguments
from ..errors import bad_request
from .anthropic_thinking import usable_items


def convert(messages: list, model: str) -> tuple[list[dict], list[dict]]:
    """System text blocks (system and developer messages, wherever they are) and the turns.
    Consecutive turns of one role are merged, as Anthropic itself does; so tool results form
    one user turn, with any user message right after them. Thinking goes back only if
    ``model`` produced it."""
    system: list[dict] = []
    turns: list[dict] = []
    for i, message in enumerate(messages):
        role = message["role"]
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            system += _text_blocks(message.get("content"), where + ".content")
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"), where + ".content")
        elif role == "assistant":
            blocks = _assistant_blocks(message, where, model)
            if not blocks:  # Anthropic refuses an assistant turn with no content: leave it out
                continue
        elif role == "tool":
            blocks = [_tool_result(message, where)]
            role = "user"
        else:
            raise bad_request(
                f"`{where}.role` 'function' is not supported: use tools.", param=where + ".role"
            )
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": role, "content": blocks})
    if not turns:
        raise bad_request(
            "`messages` needs at least one user or assistant message for Anthropic.",
            param="messages",
        )
    return system, turns


def _parts(content: object, where: str) -> list:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return content
    raise bad_request(f"`{where}` must be a string or an array of parts.", param=where)


def _text_blocks(content: object, where: str, kinds=("text",)) -> list[dict]:
    blocks = []
    for j, part in enumerate(_parts(content, where)):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in kinds:
            raise bad_request(f"`{where}[{j}]`: only text parts are allowed here.", param=where)
        text = part_text(part, str(kind), f"{where}[{j}]")  # a "refusal" part: under "refusal"
        if text:  # Anthropic refuses empty text blocks
            blocks.append({"type": "text", "text": text})
    return blocks


def _user_blocks(content: object, where: str) -> list[dict]:
    blocks = []
    for j, part in enumerate(_parts(content, where)):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part_text(part, "text", f"{where}[{j}]"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image(part, f"{where}[{j}]"))
        else:
            raise bad_request(
                f"`{where}[{j}]`: part type {kind!r} is not supported for Anthropic models "
                "(text and image_url are).",
                param=f"{where}[{j}]",
            )
    return blocks


def _image(part: dict, where: str) -> dict:
    url = image_url(part, where)
    if url.startswith("data:"):
        media_type, data = data_url(url, where + ".image_url.url")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise bad_request(
        f"`{where}.image_url.url` must be an http(s) URL or a base64 data: URL.",
        param=where + ".image_url.url",
    )


def _assistant_blocks(message: dict, where: str, model: str) -> list[dict]:
    # Signed thinking goes back first: Anthropic refuses a tool-use turn continued without it.
    blocks = _reasoning_blocks(message.get("reasoning_details"), model)
    blocks += _text_blocks(message.get("content"), where + ".content", ("text", "refusal"))
    calls = message.get("tool_calls")
    if not isinstance(calls, list | None):
        raise bad_request(f"`{where}.tool_calls` must be an array.", param=where + ".tool_calls")
    for j, call in enumerate(calls or ()):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or call.get("type", "function") != "function":
            raise bad_request(f"`{at}` must be a function tool call.", param=at)
        for name, value in (("id", call.get("id")), ("function.name", function.get("name"))):
            if not isinstance(value, str) or not value:
                raise bad_request(
                    f"`{at}.{name}` must be a non-empty string.", param=f"{at}.{name}"
                )
        use = {"type": "tool_use", "id": call.get("id"), "name": function.get("name")}
        use["input"] = tool_call_arguments(call, at)
        blocks.append(use)
    return blocks


def _reasoning_blocks(details: object, model: str) -> list[dict]:
    """Our own reasoning_details items back into thinking blocks, in order. Items of another
    format (a Gemini turn), of another model, and thinking without a signature cannot go to
    Anthropic (``anthropic_thinking.usable_items``)."""
    blocks = []
    for item in usable_items(details, model):
        if item["type"] == "reasoning.text":
            text = item.get("text") or ""
            blocks.append({"type": "thinking", "thinking": text, "signature": item["signature"]})
        else:
            blocks.append({"type": "redacted_thinking", "data": item["data"]})
    return blocks


def _tool_result(message: dict, where: str) -> dict:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request(f"`{where}.tool_call_id` is required.", param=where + ".tool_call_id")
    content = message.get("content")
    if not isinstance(content, str):
        content = _text_blocks(content, where + ".content")
    return {"type": "tool_result", "tool_use_id": call_id, "content": content}
