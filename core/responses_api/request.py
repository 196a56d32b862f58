"""A Responses request checked and turned into the Chat Completions body the providers take.

``parse_request`` checks the top-level fields; ``to_chat`` maps the resolved input items and the
parameters (docs/responses.md, "Request fields"). Every refusal is a 400 naming the Responses
field (``input[2].content[0]``, ``tools[1]``), never a chat-side name.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..chat import load_body
from ..errors import GatewayError, bad_request
from .items import decode_details

# Fields that ask for something only OpenAI's own servers hold: refused by name, not ignored.
_SERVER_STATE = {
    "conversation": "server-side conversations are not available here; send the items as "
    "`input` or use `previous_response_id`",
    "prompt": "stored prompt templates are not available here; send `instructions` and `input`",
}
_ROLES = ("user", "system", "developer", "assistant")


class ResponsesRequest(NamedTuple):
    body: dict  # the parsed JSON object, as the client sent it
    model: str
    stream: bool
    store: bool
    previous_response_id: str | None
    raw: bytes = b""  # the body as received, for an upstream that takes it unchanged


def parse_request(raw: bytes, max_items: int = 2000, max_values: int = 50_000) -> ResponsesRequest:
    """Decode and check the top-level fields; a 400 naming the field otherwise. The body is
    decoded as a chat body is (EDGERELAY_MAX_REQUEST_VALUES, non-finite numbers, depth), and
    ``input`` may hold at most ``max_items`` items (EDGERELAY_MAX_MESSAGES)."""
    body = load_body(raw, max_values)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("`model` is required and must be a non-empty string.", param="model")
    for name, why in _SERVER_STATE.items():
        if body.get(name) is not None:
            raise bad_request(f"`{name}` is not supported: {why}.", param=name)
    if body.get("background"):
        raise bad_request("`background` responses are not supported here.", param="background")
    stream = _boolean(body, "stream", False)
    store = _boolean(body, "store", True)
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise bad_request(
            "`previous_response_id` must be a non-empty string.", param="previous_response_id"
        )
    items = body.get("input")
    if not isinstance(items, str | list | None):
        raise bad_request("`input` must be a string or an array of items.", param="input")
    if isinstance(items, list):
        if len(items) > max_items:
            raise too_many_items(len(items), max_items, "EDGERELAY_MAX_MESSAGES")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise bad_request(f"`input[{i}]` must be an object.", param=f"input[{i}]")
    instructions = body.get("instructions")
    if not isinstance(instructions, str | None):
        raise bad_request("`instructions` must be a string.", param="instructions")
    return ResponsesRequest(body, model, stream, store, previous, raw)


def too_many_items(count: int, limit: int, setting: str) -> GatewayError:
    """The 400 for an ``input`` (or a conversation it continues) past the message limit."""
    return bad_request(
        f"`input` holds {count} items; at most {limit} are allowed ({setting}).",
        param="input",
        code="too_many_messages",
    )


def _boolean(body: dict, name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"`{name}` must be a boolean.", param=name)
    return value


def input_items(body: dict) -> list[tuple[str, dict]]:
    """The request's own input as (where, item): a string input is one user message."""
    items = body.get("input")
    if isinstance(items, str):
        return [("input", {"type": "message", "role": "user", "content": items})]
    return [(f"input[{i}]", item) for i, item in enumerate(items or ())]


def to_chat(request: ResponsesRequest, items: list[tuple[str, dict]]) -> tuple[dict, list[str]]:
    """The chat body, and for each chat message the Responses field it came from (for errors
    raised later by a provider's translation). ``items`` are resolved: no item_reference."""
    body = request.body
    messages: list[dict] = []
    where: list[str] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
        where.append("instructions")  # (no parts: a chat-side `.content` names it whole)
    _convert_items(items, messages, where)
    if not any(m["role"] != "system" for m in messages):
        raise bad_request("`input` is required: give at least one message.", param="input")
    chat: dict = {"model": request.model, "messages": messages}
    if request.stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    _parameters(body, chat)
    return chat, where


def _convert_items(items: list[tuple[str, dict]], messages: list, where: list) -> None:
    assistant: dict | None = None  # the assistant turn that items are being gathered into

    def open_assistant(path: str) -> dict:
        nonlocal assistant
        if assistant is None:
            assistant = {"role": "assistant", "content": None}
            messages.append(assistant)
            where.append(path + ".content")
        return assistant

    for path, item in items:
        if not isinstance(item, dict):
            raise bad_request(f"`{path}` must be an object.", param=path)
        kind = item.get("type")
        if kind is None and "role" in item:
            kind = "message"  # the short form {"role": ..., "content": ...}
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise bad_request(
                    f"`{path}.role` must be one of: {', '.join(_ROLES)}.", param=path + ".role"
                )
            if role == "assistant":
                turn = open_assistant(path)
                text = _assistant_text(item.get("content"), path + ".content")
                turn["content"] = (turn["content"] or "") + text
                continue
            assistant = None
            messages.append({"role": role, "content": _content(item, path)})
            where.append(path + ".content")
        elif kind == "function_call":
            turn = open_assistant(path)
            for name in ("call_id", "name"):
                if not isinstance(item.get(name), str) or not item[name]:
                    raise bad_request(
                        f"`{path}.{name}` must be a non-empty string.", param=f"{path}.{name}"
                    )
            arguments = item.get("arguments")
            if not isinstance(arguments, str):
                raise bad_request(
                    f"`{path}.arguments` must be a string.", param=path + ".arguments"
                )
            call = {"id": item["call_id"], "type": "function"}
            call["function"] = {"name": item["name"], "arguments": arguments}
            turn.setdefault("tool_calls", []).append(call)
        elif kind == "function_call_output":
            assistant = None
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise bad_request(
                    f"`{path}.call_id` must be a non-empty string.", param=path + ".call_id"
                )
            output = item.get("output")
            content = output if isinstance(output, str) else _parts(output, path + ".output")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
            where.append(path + ".output")
        elif kind == "reasoning":
            details = decode_details(item.get("encrypted_content"))
            if details:
                open_assistant(path).setdefault("reasoning_details", []).extend(details)
        else:
            raise bad_request(
                f"`{path}.type` {kind!r} is not supported here (message, function_call, "
                "function_call_output, reasoning and item_reference are).",
                param=path + ".type",
            )
    # An assistant turn of reasoning alone (no text, no calls) says nothing a provider takes.
    for k in range(len(messages) - 1, -1, -1):
        m = messages[k]
        if m["role"] == "assistant" and not m["content"] and not m.get("tool_calls"):
            del messages[k], where[k]


_ASSISTANT_TEXT = {"output_text": "text", "input_text": "text", "refusal": "refusal"}


def _assistant_text(content: object, path: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(f"`{path}` must be a string or an array of parts.", param=path)
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        key = _ASSISTANT_TEXT.get(kind) if isinstance(kind, str) else None
        value = part.get(key) if key else None
        if not isinstance(value, str):
            raise bad_request(
                f"`{path}[{j}]` must be an output_text or refusal part with its text.",
                param=f"{path}[{j}]",
            )
        texts.append(value)
    return "".join(texts)


def _content(item: dict, path: str) -> str | list:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return _parts(content, path + ".content")


# Parts that attach something, by Responses type: the field holding it, the chat part's type,
# the key it goes under there, an optional field carried along, and what a missing one needs.
_ATTACHMENTS = {
    "input_image": (
        "image_url",
        "image_url",
        "url",
        "detail",
        "must be an http(s) or data: URL (file ids need OpenAI's Files API).",
    ),
    "input_file": (
        "file_data",
        "file",
        "file_data",
        "filename",
        "is required: a base64 data: URL (file ids and file URLs are not fetched here).",
    ),
}


def _parts(content: object, path: str) -> list[dict]:
    if not isinstance(content, list):
        raise bad_request(f"`{path}` must be a string or an array of parts.", param=path)
    parts: list[dict[str, object]] = []
    for j, part in enumerate(content):
        at = f"{path}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise bad_request(f"`{at}.text` must be a string.", param=at + ".text")
            parts.append({"type": "text", "text": text})
        elif isinstance(kind, str) and kind in _ATTACHMENTS:
            field, chat_type, key, extra, needed = _ATTACHMENTS[kind]
            value = part.get(field)
            if not isinstance(value, str) or not value:
                raise bad_request(f"`{at}.{field}` {needed}", param=f"{at}.{field}")
            attached: dict[str, object] = {key: value}
            if isinstance(part.get(extra), str):
                attached[extra] = part[extra]
            parts.append({"type": chat_type, chat_type: attached})
        else:
            raise bad_request(
                f"`{at}`: part type {kind!r} is not supported (input_text, input_image and "
                "input_file are).",
                param=at,
            )
    return parts


def _parameters(body: dict, chat: dict) -> None:
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise bad_request("`tools` must be an array.", param="tools")
        if tools:
            chat["tools"] = [_tool(tool, f"tools[{j}]") for j, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    if choice is not None:
        chat["tool_choice"] = _tool_choice(choice)
    for name, chat_name in (
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("max_output_tokens", "max_completion_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("top_logprobs", "top_logprobs"),
        ("metadata", "metadata"),
        ("user", "user"),
        ("safety_identifier", "safety_identifier"),
    ):
        if body.get(name) is not None:
            chat[chat_name] = body[name]
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise bad_request("`reasoning` must be an object.", param="reasoning")
        if reasoning.get("effort") is not None:
            chat["reasoning_effort"] = reasoning["effort"]
        summary = reasoning.get("summary")
        if summary is not None and summary not in ("auto", "concise", "detailed"):
            raise bad_request(
                "`reasoning.summary` must be auto, concise or detailed.", param="reasoning.summary"
            )
    text = body.get("text")
    if text is not None:
        if not isinstance(text, dict):
            raise bad_request("`text` must be an object.", param="text")
        response_format = _text_format(text.get("format"))
        if response_format is not None:
            chat["response_format"] = response_format


def _tool(tool: object, path: str) -> dict:
    kind = tool.get("type") if isinstance(tool, dict) else None
    if kind != "function" or not isinstance(tool, dict):
        raise bad_request(
            f"`{path}`: the tool {kind!r} is not available here: only function tools are "
            "(built-in tools run on OpenAI's servers).",
            param=path,
        )
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request(f"`{path}.name` is required.", param=path + ".name")
    function: dict = {"name": name}
    for field in ("description", "parameters", "strict"):
        if tool.get(field) is not None:
            function[field] = tool[field]
    return {"type": "function", "function": function}


def _tool_choice(choice: object) -> object:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if isinstance(name, str) and name:
            return {"type": "function", "function": {"name": name}}
    raise bad_request(
        '`tool_choice` must be auto, none, required or {"type": "function", "name": …} '
        "(built-in tools are not available here).",
        param="tool_choice",
    )


def _text_format(spec: object) -> dict | None:
    if spec is None:
        return None
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(spec, dict):
        schema = {k: spec[k] for k in ("name", "schema", "strict", "description") if k in spec}
        return {"type": "json_schema", "json_schema": schema}
    raise bad_request(
        "`text.format` must be text, json_object or json_schema.", param="text.format"
    )


# Chat-side field names in errors raised by a provider's translation -> the Responses names.
_FIELD_NAMES = (
    ("response_format", "text.format"),
    ("max_completion_tokens", "max_output_tokens"),
    ("reasoning_effort", "reasoning.effort"),
    ("stop", "stop"),
    ("messages", "input"),
)


def responses_name(param: str, where: list[str]) -> str:
    """A chat field named by a provider translation (``messages[3].content[1]``,
    ``tools[0].function.parameters``, ``response_format``) as the client's Responses field.
    ``where`` holds, per chat message, the Responses field its content came from."""
    if param.startswith("messages[") and "]" in param:
        index, _, rest = param[len("messages[") :].partition("]")
        if not index.isdigit() or int(index) >= len(where):
            return param
        content = where[int(index)]
        item = content.rpartition(".")[0] if "." in content else content
        if rest == ".reasoning_details":
            return item  # the signed thinking travels in the reasoning items next to it
        if rest.startswith(".content"):
            return content + rest[len(".content") :]
        return item + rest
    if param.startswith("tools[") and ".function." in param:
        return param.replace(".function.", ".", 1)
    for chat_name, name in _FIELD_NAMES:
        if param == chat_name:
            return name
    return param


# A field name quoted in an error message: `messages[1].content[0]`, `max_completion_tokens`.
_QUOTED = re.compile(r"`([A-Za-z_][\w.\[\]]*)`")


def responses_error(error: GatewayError, where: list[str]) -> GatewayError:
    """An error raised on the chat side (the policy, a provider's translation) in the
    client's own terms: ``param`` and every field quoted in the message renamed to the
    Responses field (``responses_name``); signed thinking is asked for as reasoning items."""
    if error.param:
        error.param = responses_name(error.param, where)
    message = _QUOTED.sub(lambda m: f"`{responses_name(m.group(1), where)}`", error.message)
    error.message = message.replace(
        "`reasoning_details`", "reasoning items (their `encrypted_content`)"
    )
    return error
