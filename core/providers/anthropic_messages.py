"""Checked chat messages (``chat_messages.Message``) -> Anthropic's ``system`` and turns
(docs/anthropic.md, "Request fields"). What OpenAI's schema forbids was refused when the
messages were checked; what Anthropic cannot take is a 400 here naming the exact field, e.g.
``messages[2].content[1]``."""

from __future__ import annotations

from ..chat_messages import Message, Part
from ..errors import bad_request
from .anthropic_thinking import usable_items


def convert(messages: tuple[Message, ...], model: str) -> tuple[list[dict], list[dict]]:
    """System text blocks (system and developer messages, wherever they are) and the turns.
    Consecutive turns of one role are merged, as Anthropic itself does; so tool results form
    one user turn, with any user message right after them. Thinking goes back only if
    ``model`` produced it."""
    system: list[dict] = []
    turns: list[dict] = []
    for message in messages:
        role = message.role
        if role in ("system", "developer"):
            system += _text_blocks(message.content)
            continue
        if role == "user":
            blocks = _user_blocks(message)
        elif role == "assistant":
            blocks = _assistant_blocks(message, model)
            if not blocks:  # Anthropic refuses an assistant turn with no content: leave it out
                continue
        elif role == "tool":
            blocks = [_tool_result(message)]
            role = "user"
        else:
            where = f"messages[{message.position}].role"
            raise bad_request(f"`{where}` 'function' is not supported: use tools.", param=where)
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


def _text_blocks(content: str | tuple[Part, ...] | None) -> list[dict]:
    # Anthropic refuses empty text blocks.
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return [{"type": "text", "text": part.text} for part in content or () if part.text]


def _user_blocks(message: Message) -> list[dict]:
    content = message.content
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, part in enumerate(content or ()):
        kind = part.type
        if kind == "text":
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif kind == "image_url":
            blocks.append(_image(part, f"messages[{message.position}].content[{j}]"))
        else:
            where = f"messages[{message.position}].content[{j}]"
            raise bad_request(
                f"`{where}`: part type {kind!r} is not supported for Anthropic models "
                "(text and image_url are).",
                param=where,
            )
    return blocks


def _image(part: Part, where: str) -> dict:
    url = part.url
    if url is None:  # a data: URL
        source = {"type": "base64", "media_type": part.media_type, "data": part.data}
        return {"type": "image", "source": source}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise bad_request(
        f"`{where}.image_url.url` must be an http(s) URL or a base64 data: URL.",
        param=where + ".image_url.url",
    )


def _assistant_blocks(message: Message, model: str) -> list[dict]:
    # Signed thinking goes back first: Anthropic refuses a tool-use turn continued without it.
    details = message.reasoning_details
    blocks = _reasoning_blocks(details, model) if details else []
    blocks += _text_blocks(message.content)
    for j, call in enumerate(message.tool_calls):
        if not call.id:
            where = f"messages[{message.position}].tool_calls[{j}].id"
            raise bad_request(f"`{where}` must be a non-empty string.", param=where)
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
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


def _tool_result(message: Message) -> dict:
    content = message.content
    result = content if isinstance(content, str) else _text_blocks(content)
    return {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": result}
