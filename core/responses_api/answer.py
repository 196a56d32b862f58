"""The ``response`` object: its echo of the request, and a chat completion turned into it."""

from __future__ import annotations

from collections.abc import Callable

from .. import safejson
from ..errors import GatewayError
from .items import function_call_item, message_item, reasoning_item, status_of, usage
from .request import ResponsesRequest

_TEXT = {"format": {"type": "text"}}


def skeleton(request: ResponsesRequest, response_id: str, created: int) -> dict:
    """The response as it stands before any output: what ``response.created`` carries."""
    body = request.body
    reasoning = body.get("reasoning")
    if not isinstance(reasoning, dict):
        reasoning = {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": request.model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": request.store,
        "temperature": body.get("temperature"),
        "text": body["text"] if isinstance(body.get("text"), dict) else _TEXT,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p"),
        "truncation": "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def from_completion(
    completion: bytes, head: dict, new_id: Callable[[], str], provider: str
) -> dict:
    """A whole chat completion (as a provider translation or an OpenAI-compatible upstream
    answers) as the finished ``response``; a 502 if it is not a chat completion."""
    try:
        answer = safejson.loads(completion)
        choice = answer["choices"][0]
        message = choice["message"]
        if not isinstance(message, dict):
            raise TypeError
        output = output_items(message, choice.get("finish_reason"), new_id)
    except (ValueError, LookupError, TypeError, AttributeError, RecursionError):
        raise GatewayError(
            502, f"The {provider} upstream sent an answer that is not a chat completion."
        ) from None
    status, incomplete = status_of(choice.get("finish_reason"))
    response = {**head, "status": status, "incomplete_details": incomplete, "output": output}
    if isinstance(answer.get("model"), str):
        response["model"] = answer["model"]
    response["usage"] = usage(answer.get("usage"))
    return response


def output_items(message: dict, finish_reason: object, new_id: Callable[[], str]) -> list:
    """reasoning (summary text and the carried reasoning_details), then the message, then the
    function calls: the order OpenAI gives them."""
    output = []
    summary = message.get("reasoning_content")
    details = message.get("reasoning_details")
    summary = summary if isinstance(summary, str) else ""
    details = [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []
    if summary or details:
        output.append(reasoning_item("rs_" + new_id(), summary, details))
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise TypeError
    text = message.get("content")
    status = "incomplete" if status_of(finish_reason)[0] == "incomplete" else "completed"
    if isinstance(text, str) and (text or not calls):
        output.append(message_item("msg_" + new_id(), text, status))
    elif text is not None and not isinstance(text, str):
        raise TypeError
    for call in calls:
        function = call["function"]
        name, arguments = function["name"], function.get("arguments") or "{}"
        if not isinstance(name, str) or not isinstance(arguments, str):
            raise TypeError
        call_id = call.get("id") if isinstance(call.get("id"), str) else "call_" + new_id()
        output.append(function_call_item("fc_" + new_id(), call_id, name, arguments))
    return output


def failed(head: dict, error: GatewayError) -> dict:
    """The response of a stream that broke off: ``status: failed`` with ``error``."""
    return {**head, "status": "failed", "error": error_object(error)}


def error_object(error: GatewayError) -> dict:
    # ResponseError.code is a closed list in OpenAI's schema: these two fit what we know.
    code = "rate_limit_exceeded" if error.status == 429 else "server_error"
    return {"code": code, "message": error.message}
