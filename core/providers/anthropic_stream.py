"""Anthropic Messages SSE in, OpenAI ``chat.completion.chunk`` SSE out: one state machine.

Feed the upstream body in any split; each call returns the OpenAI frames that the events completed
so far produce (bytes, possibly empty). Events are parsed as JSON, never pattern-matched: real
streams pad their JSON with spaces. What each event becomes is documented in docs/anthropic.md.

Chunks are written by ``chat_output.ChunkWriter`` (head and tail built once, at
``message_start``; per chunk only the delta is encoded).
"""

from __future__ import annotations

from .. import safejson
from ..chat_output import DONE, ChunkWriter
from ..errors import GatewayError, stream_error_frame
from ..safejson import dumps
from ..sse import SSEParser, encode_comment
from .anthropic_response import (
    error_from,
    finish_reason,
    openai_usage,
    redacted_item,
    thinking_item,
)

_PING = encode_comment("ping")  # SDKs skip a comment; idle timers see traffic


class _Block:
    """One open Anthropic content block: what it is and what it has gathered."""

    __slots__ = ("kind", "number", "parts", "signature", "args", "input")

    def __init__(self, kind: str, number: int = 0) -> None:
        self.kind = kind
        self.number = number  # the OpenAI tool call index, or the reasoning_details index
        self.parts: list[str] = []  # thinking text so far
        self.signature: list[str] = []
        self.args = False  # an arguments delta was sent for this tool call
        self.input: object = None  # a tool_use block's input as given at its start


class AnthropicStream:
    """``feed(bytes) -> bytes``, ``finish() -> bytes``, ``fail(GatewayError) -> bytes``."""

    __slots__ = (
        "_parser",
        "_id",
        "_model",
        "_out",
        "_started",
        "_blocks",
        "_tools",
        "_reasoning",
        "_usage",
        "_finished",
        "_done",
    )

    def __init__(
        self,
        model: str,
        completion_id: str,
        created: int,
        include_usage: bool,
        max_event_bytes: int | None = None,
    ) -> None:
        self._parser = SSEParser(max_event_bytes)
        self._id = completion_id
        self._model = model
        self._out = ChunkWriter(completion_id, created, model, include_usage)
        self._started = False  # the role chunk was sent
        self._blocks: dict[int, _Block] = {}
        self._tools = 0
        self._reasoning = 0
        self._usage: dict = {}
        self._finished = False  # the finish_reason chunk was sent
        self._done = False  # [DONE] or an error was sent: nothing more goes out

    def feed(self, chunk: bytes) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        for event in self._parser.feed(chunk):
            self._on(event.data, out)
            if self._done:
                break
        return b"".join(out) if out else b""

    def finish(self) -> bytes:
        """The upstream body ended. Without ``message_stop`` the client is told, never left with
        a silently shortened answer (unless the finish chunk was already sent)."""
        if self._done:
            return b""
        out: list[bytes] = []
        for event in self._parser.finish():
            self._on(event.data, out)
            if self._done:
                break
        if not self._done:
            if self._finished:
                out.append(DONE)
            else:
                message = "The Anthropic stream ended before the answer was complete."
                out.append(stream_error_frame(GatewayError(502, message)))
            self._done = True
        return b"".join(out)

    def fail(self, error: GatewayError) -> bytes:
        if self._done:
            return b""
        self._done = True
        return stream_error_frame(error)

    def _on(self, data: str, out: list[bytes]) -> None:
        try:
            event = safejson.loads(data)
            kind = event["type"]
            if kind == "content_block_delta":
                self._delta(event, out)
            elif kind == "content_block_start":
                self._block_start(event, out)
            elif kind == "content_block_stop":
                self._block_stop(event, out)
            elif kind == "ping":
                out.append(_PING)
            elif kind == "message_start":
                self._message_start(event, out)
            elif kind == "message_delta":
                self._message_delta(event, out)
            elif kind == "message_stop":
                if not self._finished:  # a message_delta should have come first
                    self._message_delta({}, out)
                out.append(DONE)
                self._done = True
            elif kind == "error":
                out.append(stream_error_frame(error_from(event.get("error"))))
                self._done = True
            # Other event types are skipped: Anthropic may add new ones at any time.
        except (ValueError, LookupError, TypeError, AttributeError, RecursionError):
            message = "The Anthropic upstream sent a malformed stream event."
            out.append(stream_error_frame(GatewayError(502, message)))
            self._done = True

    def _delta(self, event: dict, out: list[bytes]) -> None:
        delta = event["delta"]
        kind = delta["type"]
        if kind == "text_delta":
            text = delta["text"]
            if text:
                out.append(self._out.delta(b'{"content":' + dumps(text) + b"}"))
        elif kind == "input_json_delta":
            part = delta["partial_json"]
            block = self._blocks[event["index"]]
            if part and block.kind == "tool":  # not a server tool's input
                block.args = True
                out.append(
                    self._out.delta(
                        b'{"tool_calls":[{"index":%d,"function":{"arguments":' % block.number
                        + dumps(part)
                        + b"}}]}"
                    )
                )
        elif kind == "thinking_delta":
            text = delta["thinking"]
            if text:
                self._blocks[event["index"]].parts.append(text)
                out.append(self._out.delta(b'{"reasoning_content":' + dumps(text) + b"}"))
        elif kind == "signature_delta":
            self._blocks[event["index"]].signature.append(delta["signature"])
        # citations_delta and later kinds carry nothing an OpenAI client could show.

    def _block_start(self, event: dict, out: list[bytes]) -> None:
        if not self._started:
            self._message_start({"message": {}}, out)
        block = event["content_block"]
        kind = block["type"]
        index = event["index"]
        if kind == "text":
            self._blocks[index] = _Block("text")
            if block.get("text"):
                out.append(self._out.delta(b'{"content":' + dumps(block["text"]) + b"}"))
        elif kind == "tool_use":
            # OpenAI counts tool calls from 0 in order, whatever Anthropic's block index is.
            opened = self._blocks[index] = _Block("tool", self._tools)
            opened.input = block.get("input")
            call = {"index": self._tools, "id": block["id"], "type": "function"}
            call["function"] = {"name": block["name"], "arguments": ""}
            self._tools += 1
            out.append(self._out.delta(dumps({"tool_calls": [call]})))
        elif kind == "thinking":
            opened = self._blocks[index] = _Block("thinking", self._reasoning)
            self._reasoning += 1
            if block.get("thinking"):
                opened.parts.append(block["thinking"])
                text = dumps(block["thinking"])
                out.append(self._out.delta(b'{"reasoning_content":' + text + b"}"))
            if block.get("signature"):
                opened.signature.append(block["signature"])
        elif kind == "redacted_thinking":
            # Complete as it starts: the encrypted thinking comes whole.
            item = redacted_item(block["data"], self._reasoning, self._model)
            self._reasoning += 1
            self._blocks[index] = _Block("redacted")
            out.append(self._out.delta(dumps({"reasoning_details": [item]})))
        else:  # server tool blocks and later kinds: nothing for an OpenAI client
            self._blocks[index] = _Block(kind)

    def _block_stop(self, event: dict, out: list[bytes]) -> None:
        block = self._blocks.pop(event["index"], None)
        if block is None:
            return
        if block.kind == "thinking":
            # The item goes out once complete: with its signature, which comes last.
            text, signed = "".join(block.parts), "".join(block.signature)
            item = thinking_item(text, signed, block.number, self._model)
            out.append(self._out.delta(dumps({"reasoning_details": [item]})))
        elif block.kind == "tool" and not block.args:
            # No input_json_delta: send the arguments whole, "{}" for none, as OpenAI does.
            arguments = dumps(block.input).decode() if block.input else "{}"
            call = {"index": block.number, "function": {"arguments": arguments}}
            out.append(self._out.delta(dumps({"tool_calls": [call]})))

    def _message_start(self, event: dict, out: list[bytes]) -> None:
        if self._started:
            return
        message = event["message"]
        # Anthropic's message id and the model that answered are kept.
        self._out.restart(message.get("id") or self._id, message.get("model") or self._model)
        usage = message.get("usage")
        if isinstance(usage, dict):
            self._usage.update(usage)
        self._started = True
        out.append(self._out.role())

    def _message_delta(self, event: dict, out: list[bytes]) -> None:
        usage = event.get("usage")
        if isinstance(usage, dict):  # newer streams repeat the input counts here: they win
            self._usage.update((k, v) for k, v in usage.items() if v is not None)
        if self._finished:
            return
        self._finished = True
        reason = finish_reason((event.get("delta") or {}).get("stop_reason"))
        out.append(self._out.finish(reason))
        if self._out.include_usage:
            out.append(self._out.usage(openai_usage(self._usage)))
