"""Gemini's ``streamGenerateContent?alt=sse`` as OpenAI chat.completion.chunk frames.

Gemini frames are whole ``GenerateContentResponse`` objects, CRLF-framed, with usage repeated
on every frame and no terminator: the stream ends when the body ends. Each part becomes one
OpenAI chunk (a function call arrives whole, so it is one complete tool_calls delta); the finish
chunk follows the frame carrying ``finishReason``; usage and ``[DONE]`` are sent once the body
has ended, so the usage reported is the last (final) one Gemini sent.

Chunks are written by ``chat_output.ChunkWriter`` (head and tail fixed at the first frame; per
chunk only the delta is serialised).
"""

from __future__ import annotations

from .. import safejson
from ..chat_output import DONE, ChunkWriter
from ..errors import GatewayError, stream_error_frame
from ..routing import Route
from ..safejson import dumps
from ..sse import SSEParser
from .base import ChatContext
from .gemini_response import finish_reason, google_error, openai_usage, signature


class GeminiStream:
    __slots__ = (
        "_calls",
        "_ctx",
        "_details",
        "_done",
        "_finished",
        "_model",
        "_out",
        "_parser",
        "_usage",
    )

    def __init__(self, route: Route, ctx: ChatContext) -> None:
        self._ctx = ctx
        self._model = route.model
        self._parser = SSEParser(ctx.max_event_bytes)
        self._out: ChunkWriter | None = None  # once the first frame named id and model
        self._calls = 0  # tool calls sent: the next call's index
        self._details = 0  # reasoning_details entries sent: the next entry's index
        self._finished = False  # the finish chunk was sent
        self._usage = None  # the latest usageMetadata: Gemini repeats and updates it
        self._done = False  # nothing more may be sent (finished, or an error frame went out)

    def feed(self, chunk: bytes) -> bytes:
        events = self._parser.feed(chunk)
        if not events or self._done:
            return b""
        out: list[bytes] = []
        for event in events:
            self._event(event.data, out)
        return b"".join(out)

    def finish(self) -> bytes:
        out: list[bytes] = []
        for event in self._parser.finish():
            self._event(event.data, out)
        if self._done:
            return b"".join(out)
        if not self._finished:
            # Gemini has no terminator: a body that ends before finishReason was cut short.
            message = "The Gemini stream ended before the answer was finished."
            out.append(self.fail(GatewayError(502, message)))
            return b"".join(out)
        out.append(self._close())
        return b"".join(out)

    def fail(self, error: GatewayError) -> bytes:
        if self._done:
            return b""
        if self._finished:
            # Broken after the finish frame, Gemini's last: nothing of the answer was lost.
            return self._close()
        self._done = True
        return stream_error_frame(error)

    def _close(self) -> bytes:
        self._done = True
        if not self._ctx.include_usage or self._out is None:
            return DONE
        return self._out.usage(openai_usage(self._usage)) + DONE

    def _event(self, data: str, out: list[bytes]) -> None:
        try:
            self._frame(data, out)
        except (AttributeError, TypeError, KeyError, RecursionError):  # not Gemini's shapes
            message = "The Gemini stream sent a frame of an unexpected shape."
            out.append(self.fail(GatewayError(502, message)))

    def _frame(self, data: str, out: list[bytes]) -> None:
        if self._done:
            return
        try:
            frame = safejson.loads(data)
        except (ValueError, RecursionError):
            frame = None
        if not isinstance(frame, dict):
            out.append(
                self.fail(GatewayError(502, "The Gemini stream sent a frame that is not JSON."))
            )
            return
        if "error" in frame:  # Google reports a failure after the 200 inside the stream
            error = frame["error"]
            status = error.get("code") if isinstance(error, dict) else None
            out.append(self.fail(google_error(status if isinstance(status, int) else 502, error)))
            return
        if self._out is None:
            self._out = self._start(frame, out)
        meta = frame.get("usageMetadata")
        if meta:
            self._usage = meta
        if self._finished:
            return  # OpenAI clients expect nothing but usage after the finish chunk
        candidates = frame.get("candidates")
        if candidates:
            candidate = candidates[0]
            parts = (candidate.get("content") or {}).get("parts")
            if parts:
                for part in parts:
                    self._part(part, out)
            reason = candidate.get("finishReason")
            if reason:
                self._finish(finish_reason(reason, self._calls > 0), out)
        elif (frame.get("promptFeedback") or {}).get("blockReason"):
            self._finish("content_filter", out)  # the prompt was blocked: no candidate comes

    def _start(self, frame: dict, out: list[bytes]) -> ChunkWriter:
        ctx = self._ctx
        writer = ChunkWriter(
            frame.get("responseId") or ctx.completion_id,
            ctx.created,
            frame.get("modelVersion") or self._model,
            ctx.include_usage,
        )
        out.append(writer.role())
        return writer

    def _part(self, part: dict, out: list[bytes]) -> None:
        delta: dict
        call = part.get("functionCall")
        call_id = None
        if call is not None:
            call_id = "call_" + self._ctx.new_id()
            function = {
                "name": call.get("name", ""),
                "arguments": dumps(call.get("args") or {}).decode(),
            }
            tool = {"index": self._calls, "id": call_id, "type": "function", "function": function}
            delta = {"tool_calls": [tool]}
            self._calls += 1
        elif part.get("thought"):
            delta = {"reasoning_content": part.get("text", "")}
        else:
            text = part.get("text")
            delta = {"content": text} if text else {}
        if "thoughtSignature" in part:
            delta["reasoning_details"] = [
                signature(part["thoughtSignature"], call_id, self._details, self._model)
            ]
            self._details += 1
        if delta and self._out is not None:
            out.append(self._out.delta(dumps(delta)))

    def _finish(self, reason: str, out: list[bytes]) -> None:
        self._finished = True
        if self._out is not None:
            out.append(self._out.finish(reason))
