"""Chat Completions chunks in, the Responses event stream out: one state machine.

It is fed the OpenAI ``chat.completion.chunk`` SSE that the provider stream translators
(Anthropic, Gemini), ``mock/echo`` or an OpenAI-compatible chat upstream produce, in any split,
and writes the events the official SDKs expect, numbered by ``sequence_number``:
``response.created``, ``response.in_progress``, then per output item ``output_item.added`` …
``output_item.done`` (text: ``content_part.added``, ``output_text.delta`` …, ``.done``,
``content_part.done``; function calls: ``function_call_arguments.delta`` …, ``.done``; reasoning:
``reasoning_summary_part.added``, ``reasoning_summary_text.delta`` …, ``.done``,
``reasoning_summary_part.done``), ending in ``response.completed`` or ``response.incomplete``.
An error chunk, or a chat stream that ends before ``[DONE]``, ends it with ``error`` and
``response.failed`` carrying ``response.error``: never a silent end.

Reasoning details (signed thinking, thought signatures) that arrive while a message or a
function call is open are kept and written as a reasoning item of their own right after it, so a
text is never split in two; a client sending the items back gets them all into one assistant
turn again (see ``request.to_chat``).
"""

from __future__ import annotations

from collections.abc import Callable

from .. import safejson
from ..errors import GatewayError
from ..safejson import dumps
from ..sse import SSEParser
from .answer import error_object, failed
from .items import (
    function_call_item,
    message_item,
    reasoning_item,
    status_of,
    summary_part,
    text_part,
    usage,
)


class _Item:
    __slots__ = ("kind", "id", "index", "text", "details", "call_id", "name", "chat_index")

    def __init__(self, kind: str, item_id: str, index: int) -> None:
        self.kind = kind  # "message" | "function_call" | "reasoning"
        self.id = item_id
        self.index = index  # output_index
        self.text: list[str] = []  # message text, summary text or call arguments
        self.details: list[dict] = []  # reasoning_details carried by a reasoning item
        self.call_id = ""
        self.name = ""
        self.chat_index = -1  # the chat tool call index of a function call

    def done(self, status: str = "completed") -> dict:
        text = "".join(self.text)
        if self.kind == "message":
            return message_item(self.id, text, status)
        if self.kind == "function_call":
            return function_call_item(self.id, self.call_id, self.name, text or "{}", status)
        return reasoning_item(self.id, text, self.details, status)


class ResponsesStream:
    """``start() -> bytes``, ``feed(bytes) -> bytes``, ``finish() -> bytes``,
    ``fail(GatewayError) -> bytes``. ``final`` is the finished response object once the stream
    ended well (``response.completed`` or ``response.incomplete``), for storing."""

    def __init__(
        self, head: dict, new_id: Callable[[], str], max_event_bytes: int | None = None
    ) -> None:
        self._head = head
        self._new_id = new_id
        # Bounded like every parsed upstream stream (an OpenAI-compatible chat server's chunks
        # come here unparsed): a larger event raises sse.EventTooLarge.
        self._parser = SSEParser(max_event_bytes)
        self._seq = 0
        self._output: list[dict] = []  # items done, in output order
        self._open: _Item | None = None
        self._pending: list[dict] = []  # reasoning details waiting for the open item to end
        self._calls: dict[int, _Item] = {}  # by chat tool call index
        self._finish: object = None
        self._usage: object = None
        self._model: str | None = None
        self._done = False
        self.final: dict | None = None

    # -- framing ----------------------------------------------------------------------------

    def _event(self, out: list[bytes], kind: str, **fields: object) -> None:
        event = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        out.append(b"event: " + kind.encode() + b"\ndata: " + dumps(event) + b"\n\n")

    def start(self) -> bytes:
        out: list[bytes] = []
        self._event(out, "response.created", response=self._head)
        self._event(out, "response.in_progress", response=self._head)
        return b"".join(out)

    # -- input ------------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        for event in self._parser.feed(chunk):
            self._on(event.data, out)
            if self._done:
                break
        return b"".join(out)

    def finish(self) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        for event in self._parser.finish():
            self._on(event.data, out)
            if self._done:
                return b"".join(out)
        self._fail(
            GatewayError(502, "The upstream stream ended before the answer was complete."), out
        )
        return b"".join(out)

    def fail(self, error: GatewayError) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        self._fail(error, out)
        return b"".join(out)

    def _on(self, data: str, out: list[bytes]) -> None:
        if data == "[DONE]":
            self._complete(out)
            return
        try:
            chunk = safejson.loads(data)
            if not isinstance(chunk, dict):
                raise TypeError
            if chunk.get("error") is not None:
                self._fail(_error_of(chunk["error"]), out)
                return
            if isinstance(chunk.get("model"), str):
                self._model = chunk["model"]
            if chunk.get("usage") is not None:
                self._usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                self._delta(delta, out)
                if choice.get("finish_reason") is not None:
                    self._finish = choice["finish_reason"]
        except (ValueError, LookupError, TypeError, AttributeError, RecursionError):
            self._fail(GatewayError(502, "The upstream sent a malformed stream chunk."), out)

    def _delta(self, delta: dict, out: list[bytes]) -> None:
        thinking = delta.get("reasoning_content")
        if isinstance(thinking, str) and thinking:
            self._summary(thinking, out)
        details = delta.get("reasoning_details")
        if isinstance(details, list) and details:
            details = [d for d in details if isinstance(d, dict)]
            if self._open is not None and self._open.kind == "reasoning":
                self._open.details += details
            else:
                self._pending += details
        text = delta.get("content")
        if isinstance(text, str) and text:
            self._text(text, out)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._text(refusal, out)
        for call in delta.get("tool_calls") or ():
            self._tool_call(call, out)
        if self._pending and self._open is not None and self._open.kind == "reasoning":
            self._open.details += self._pending
            self._pending = []

    # -- items ------------------------------------------------------------------------------

    def _new(self, kind: str, prefix: str, out: list[bytes]) -> _Item:
        self._close(out)
        self._flush_pending(out)
        item = self._open = _Item(kind, prefix + self._new_id(), len(self._output))
        return item

    def _summary(self, text: str, out: list[bytes]) -> None:
        item = self._open
        if item is None or item.kind != "reasoning":
            item = self._new("reasoning", "rs_", out)
            item.details, self._pending = self._pending, []
            self._added(item, reasoning_item(item.id, "", [], "in_progress"), out)
        if not item.text:
            self._event(
                out,
                "response.reasoning_summary_part.added",
                **self._at(item),
                summary_index=0,
                part=summary_part(""),
            )
        item.text.append(text)
        self._event(
            out,
            "response.reasoning_summary_text.delta",
            **self._at(item),
            summary_index=0,
            delta=text,
        )

    def _text(self, text: str, out: list[bytes]) -> None:
        item = self._open
        if item is None or item.kind != "message":
            item = self._new("message", "msg_", out)
            added = message_item(item.id, "", "in_progress")
            added["content"] = []
            self._added(item, added, out)
            self._event(
                out,
                "response.content_part.added",
                **self._at(item),
                content_index=0,
                part=text_part(""),
            )
        item.text.append(text)
        self._event(
            out,
            "response.output_text.delta",
            **self._at(item),
            content_index=0,
            delta=text,
            logprobs=[],
        )

    def _tool_call(self, call: dict, out: list[bytes]) -> None:
        index = call.get("index", 0)
        function = call.get("function") or {}
        item = self._calls.get(index)
        if item is None:
            item = self._new("function_call", "fc_", out)
            item.chat_index = index
            item.call_id = call.get("id") or "call_" + self._new_id()
            item.name = function.get("name") or ""
            self._calls[index] = item
            added = function_call_item(item.id, item.call_id, item.name, "", "in_progress")
            self._added(item, added, out)
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.text.append(arguments)
            if item is self._open:  # a late piece for a call already done is kept quietly
                self._event(
                    out, "response.function_call_arguments.delta", **self._at(item), delta=arguments
                )

    def _added(self, item: _Item, shape: dict, out: list[bytes]) -> None:
        self._event(out, "response.output_item.added", output_index=item.index, item=shape)

    def _at(self, item: _Item) -> dict:
        return {"item_id": item.id, "output_index": item.index}

    def _close(self, out: list[bytes], status: str = "completed") -> None:
        item, self._open = self._open, None
        if item is None:
            return
        text = "".join(item.text)
        if item.kind == "message":
            self._event(
                out,
                "response.output_text.done",
                **self._at(item),
                content_index=0,
                text=text,
                logprobs=[],
            )
            self._event(
                out,
                "response.content_part.done",
                **self._at(item),
                content_index=0,
                part=text_part(text),
            )
        elif item.kind == "function_call":
            self._event(
                out,
                "response.function_call_arguments.done",
                **self._at(item),
                name=item.name,
                arguments=text or "{}",
            )
        elif item.text:
            self._event(
                out,
                "response.reasoning_summary_text.done",
                **self._at(item),
                summary_index=0,
                text=text,
            )
            self._event(
                out,
                "response.reasoning_summary_part.done",
                **self._at(item),
                summary_index=0,
                part=summary_part(text),
            )
        done = item.done(status)
        self._output.append(done)
        self._event(out, "response.output_item.done", output_index=item.index, item=done)

    def _flush_pending(self, out: list[bytes]) -> None:
        if not self._pending:
            return
        item = _Item("reasoning", "rs_" + self._new_id(), len(self._output))
        item.details, self._pending = self._pending, []
        self._added(item, reasoning_item(item.id, "", item.details, "in_progress"), out)
        done = item.done()
        self._output.append(done)
        self._event(out, "response.output_item.done", output_index=item.index, item=done)

    # -- the end ----------------------------------------------------------------------------

    def _complete(self, out: list[bytes]) -> None:
        if self._finish is None:
            self._fail(GatewayError(502, "The upstream stream ended without a finish reason."), out)
            return
        status, incomplete = status_of(self._finish)
        self._close(out, "incomplete" if status == "incomplete" else "completed")
        self._flush_pending(out)
        response = {**self._head, "status": status, "incomplete_details": incomplete}
        response["output"] = self._output
        if self._model:
            response["model"] = self._model
        response["usage"] = usage(self._usage)
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        self._event(out, kind, response=response)
        self.final = response
        self._done = True

    def _fail(self, error: GatewayError, out: list[bytes]) -> None:
        self._done = True
        self._event(
            out, "error", code=error_object(error)["code"], message=error.message, param=None
        )
        response = failed(self._head, error)
        response["output"] = self._output
        self._event(out, "response.failed", response=response)


def _error_of(error: object) -> GatewayError:
    """A chat error chunk's ``error`` object as a GatewayError (status from its type)."""
    error = error if isinstance(error, dict) else {}
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = "The upstream stream broke off with an error."
    status = 429 if error.get("type") in ("rate_limit_error", "rate_limit_exceeded") else 502
    return GatewayError(status, message)
