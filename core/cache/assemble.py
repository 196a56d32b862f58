"""A ``chat.completion`` answer assembled from the ``chat.completion.chunk`` frames of a stream,
as OpenAI's own SDK accumulates them: string fields of each choice's delta are concatenated,
tool calls are merged by their index, other lists (logprobs, reasoning details) are extended,
and the usage chunk gives the usage."""

from __future__ import annotations

from typing import Any


class Assembler:
    """``add(chunk)`` for each decoded chunk object; ``completion()`` once the stream is done.
    ``finished`` says whether every choice seen got its ``finish_reason``."""

    __slots__ = ("_choices", "_head", "_usage")

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None

    def add(self, chunk: dict) -> None:
        for field in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if field in chunk and field not in self._head:
                self._head[field] = chunk[field]
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            index = index if isinstance(index, int) else 0
            state = self._choices.setdefault(
                index, {"message": {}, "finish_reason": None, "logprobs": None}
            )
            delta = choice.get("delta")
            if isinstance(delta, dict):
                _merge_delta(state["message"], delta)
            if choice.get("finish_reason") is not None:
                state["finish_reason"] = choice["finish_reason"]
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict):
                _merge_logprobs(state, logprobs)

    @property
    def finished(self) -> bool:
        return bool(self._choices) and all(
            c["finish_reason"] is not None for c in self._choices.values()
        )

    def completion(self) -> dict[str, Any]:
        """The ``chat.completion`` object (``usage`` only when the stream reported it)."""
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            message = {"role": "assistant", "content": None, **state["message"]}
            if "tool_calls" in message:
                message["tool_calls"] = [
                    message["tool_calls"][i] for i in sorted(message["tool_calls"])
                ]
            choices.append(
                {
                    "index": index,
                    "message": message,
                    "logprobs": state["logprobs"],
                    "finish_reason": state["finish_reason"],
                }
            )
        out = {
            "id": self._head.get("id"),
            "object": "chat.completion",
            "created": self._head.get("created"),
            "model": self._head.get("model"),
            "choices": choices,
        }
        for field in ("system_fingerprint", "service_tier"):
            if self._head.get(field) is not None:
                out[field] = self._head[field]
        if self._usage is not None:
            out["usage"] = self._usage
        return out


def _merge_delta(message: dict, delta: dict) -> None:
    for key, value in delta.items():
        if key == "tool_calls" and isinstance(value, list):
            calls = message.setdefault("tool_calls", {})
            for call in value:
                if isinstance(call, dict):
                    _merge_call(calls, call)
        elif isinstance(value, str):
            # The role comes once; text fields arrive in pieces.
            previous = message.get(key)
            message[key] = (
                value if key == "role" or not isinstance(previous, str) else previous + value
            )
        elif isinstance(value, list):
            previous = message.get(key)
            message[key] = [*previous, *value] if isinstance(previous, list) else list(value)
        elif value is not None or key not in message:
            message[key] = value


def _merge_call(calls: dict, call: dict) -> None:
    index = call.get("index", len(calls))
    state = calls.setdefault(index, {})
    for key, value in call.items():
        if key == "index":
            continue
        if key == "function" and isinstance(value, dict):
            function = state.setdefault("function", {})
            for name, piece in value.items():
                if isinstance(piece, str) and isinstance(function.get(name), str):
                    function[name] += piece
                else:
                    function[name] = piece
        elif value is not None or key not in state:
            state[key] = value
    state.setdefault("type", "function")


def _merge_logprobs(state: dict, logprobs: dict) -> None:
    merged = state["logprobs"] or {}
    for key, value in logprobs.items():
        if isinstance(value, list):
            merged[key] = [*merged.get(key, []), *value]
        elif key not in merged:
            merged[key] = value
    state["logprobs"] = merged
