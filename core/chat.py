"""Parsing and checking an OpenAI Chat Completions request body; shared chunk builders."""

from __future__ import annotations

from typing import NamedTuple

from . import safejson
from .chat_messages import Message, normalise
from .errors import bad_request

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class ChatRequest(NamedTuple):
    """A parsed Chat Completions request: the fields every provider relies on, checked."""

    body: dict  # the parsed JSON object, as the client sent it
    model: str
    stream: bool
    include_usage: bool
    raw: bytes = b""  # the body as received, for an upstream that takes it unchanged
    # What is derived from ``body`` once per request and shared by every copy ``_replace``
    # makes (a fallback chain translates one request for several providers); None: not kept.
    derived: dict | None = None

    def messages(self) -> tuple[Message, ...]:
        """``body["messages"]`` checked (``chat_messages.normalise``), once per request: a copy
        of this request with a new body but the same messages list reuses it."""
        messages = self.body["messages"]
        derived = self.derived
        if derived is not None:
            held = derived.get("messages")
            if held is not None and held[0] is messages:  # the list held alive: a safe identity
                return held[1]
        checked = normalise(messages)
        if derived is not None:
            derived["messages"] = (messages, checked)
        return checked


def parse_chat_request(
    raw: bytes, max_messages: int = 2000, max_values: int = 50_000
) -> ChatRequest:
    """Decode and check the fields every provider relies on; 400 naming the field otherwise.
    More than ``max_messages`` messages, or more than ``max_values`` JSON values in all, is a
    400 too: each costs CPU to parse, check and translate, on the event loop every other
    request shares (the values are counted before parsing)."""
    body = load_body(raw, max_values)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("`model` is required and must be a non-empty string.", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("`messages` is required and must be a non-empty array.", param="messages")
    if len(messages) > max_messages:
        raise bad_request(
            f"`messages` has {len(messages)} messages; at most {max_messages} are allowed "
            "(EDGERELAY_MAX_MESSAGES).",
            param="messages",
            code="too_many_messages",
        )
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(f"`messages[{i}]` must be an object.", param=f"messages[{i}]")
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:
            raise bad_request(
                f"`messages[{i}].role` must be one of: {', '.join(sorted(ROLES))}.",
                param=f"messages[{i}].role",
            )
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request("`stream` must be a boolean.", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("`stream_options` must be an object.", param="stream_options")
    include_usage = bool(stream and options and options.get("include_usage"))
    return ChatRequest(body, model, stream, include_usage, raw, {})


def load_body(raw: bytes, max_values: int = 50_000) -> dict:
    """A request body as a JSON object, or a 400 saying what is wrong with it: more than
    ``max_values`` JSON values (counted before parsing, so one request cannot hold the event
    loop), a number JSON cannot carry (named by its field), nesting past
    ``safejson.MAX_DEPTH``, invalid JSON, anything but an object."""
    if safejson.values_over(raw, max_values):
        raise bad_request(
            f"The request body holds more than {max_values} JSON values "
            "(EDGERELAY_MAX_REQUEST_VALUES).",
            code="too_many_values",
        )
    try:
        body = safejson.loads(raw)
    except safejson.NonFinite as exc:
        field = safejson.nonfinite_path(raw)
        where = f"`{field}`" if field else "The request body"
        raise bad_request(
            f"{where} holds a number JSON cannot carry ({exc}).", param=field or None
        ) from None
    except safejson.TooDeep:
        raise bad_request(
            f"The request body is nested too deeply (more than {safejson.MAX_DEPTH} levels)."
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def text_of(content: object) -> str:
    """The text of a message's ``content``: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") == "text"
            and isinstance(part.get("text"), str)
        )
    return ""


# The checked request: each field a provider maps, checked once here with one wording per error
# (the fields the OpenAI passthrough never needs checked: an OpenAI upstream judges its own).

EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


class Tool(NamedTuple):
    """A function tool: its name, description and JSON Schema parameters."""

    name: str
    description: str | None
    parameters: dict | None


class ToolChoice(NamedTuple):
    """``mode`` is auto, none or required; ``name`` a forced function (mode "required")."""

    mode: str
    name: str | None = None


class Checked(NamedTuple):
    """The fields of a chat request that providers map, normalised."""

    max_tokens: int | None  # the client's output limit (max_completion_tokens wins)
    max_tokens_field: str | None  # the field it came in, for error messages
    stop: tuple[str, ...]
    temperature: float | None
    top_p: float | None
    tools: tuple[Tool, ...]
    tool_choice: ToolChoice | None
    parallel_tool_calls: bool | None
    reasoning_effort: str | None


def check(body: dict) -> Checked:
    """The mapped fields of ``body`` normalised; a 400 naming the field for a bad one."""
    limit, limit_field = _max_tokens(body)
    parallel = body.get("parallel_tool_calls")
    return Checked(
        limit,
        limit_field,
        _stop(body.get("stop")),
        _number(body, "temperature"),
        _number(body, "top_p"),
        _tools(body.get("tools")),
        _tool_choice(body.get("tool_choice")),
        parallel if isinstance(parallel, bool) else None,
        _effort(body.get("reasoning_effort")),
    )


def _max_tokens(body: dict) -> tuple[int | None, str | None]:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad_request(f"`{name}` must be a positive integer.", param=name)
        return value, name
    return None, None


def _stop(stop: object) -> tuple[str, ...]:
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise bad_request("`stop` must be a string or an array of strings.", param="stop")
    return tuple(stop)


def _number(body: dict, name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise bad_request(f"`{name}` must be a non-negative number.", param=name)
    return value


def _tools(tools: object) -> tuple[Tool, ...]:
    if not tools:
        return ()
    if not isinstance(tools, list):
        raise bad_request("`tools` must be an array.", param="tools")
    out = []
    for j, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function":
            raise bad_request(
                f"`tools[{j}]` must be a function tool (only function tools are supported).",
                param=f"tools[{j}]",
            )
        name = function.get("name")
        if not isinstance(name, str) or not name:
            where = f"tools[{j}].function.name"
            raise bad_request(f"`{where}` is required.", param=where)
        for field, kind, what in (
            ("description", str, "a string"),
            ("parameters", dict, "an object"),
        ):
            if not isinstance(function.get(field), kind | None):
                where = f"tools[{j}].function.{field}"
                raise bad_request(f"`{where}` must be {what}.", param=where)
        out.append(Tool(name, function.get("description"), function.get("parameters")))
    return tuple(out)


def _tool_choice(choice: object) -> ToolChoice | None:
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        return ToolChoice(str(choice))
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    named = isinstance(choice, dict) and choice.get("type") == "function"
    if named and isinstance(name, str) and name:
        return ToolChoice("required", name)
    raise bad_request(
        "`tool_choice` must be auto, none, required or a named function.", param="tool_choice"
    )


def _effort(effort: object) -> str | None:
    if effort is None:
        return None
    if not isinstance(effort, str) or effort not in EFFORTS:
        raise bad_request(
            f"`reasoning_effort` must be one of: {', '.join(EFFORTS)}.", param="reasoning_effort"
        )
    return effort


class Field(NamedTuple):
    """One row of a provider's field mapping: the OpenAI field (a ``Checked`` field, else the
    body's own), the provider's field, a default when absent, and a ceiling it is clamped to."""

    source: str
    target: str
    default: object = None
    ceiling: float | None = None


def map_fields(fields: tuple[Field, ...], checked: Checked, body: dict, out: dict) -> None:
    """Write ``fields`` into ``out``: what a mapping table can say, said once."""
    for field in fields:
        if field.source in Checked._fields:
            value = getattr(checked, field.source)
        else:
            value = body.get(field.source)
        if value is None or value == ():
            value = field.default
            if value is None:
                continue
        if field.ceiling is not None:
            value = min(value, field.ceiling)
        out[field.target] = list(value) if isinstance(value, tuple) else value
