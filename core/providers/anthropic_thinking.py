"""``reasoning_effort`` as Anthropic thinking, per model, and tool turns that lost their thinking.

What a Claude model accepts comes from the registry's per-model facts (``ModelFacts``):
adaptive models get ``thinking: {"type": "adaptive"}`` with ``output_config.effort``, budget
models ``{"type": "enabled", "budget_tokens": N}``; docs/anthropic.md has the table and its
sources.

With thinking on, Anthropic refuses a tool-use turn continued without the signed thinking that
came with it ("Expected `thinking` or `redacted_thinking`, but found `tool_use`"). Many clients
drop ``reasoning_details`` when they send the assistant message back, so such a turn is repaired
here: thinking off for a model that accepts that (as Anthropic's own error message advises), a
400 naming the missing field for one that does not.
"""

from __future__ import annotations

from typing import NamedTuple

from ..chat_messages import Message
from ..errors import bad_request
from ..registry import ModelFacts
from .anthropic_response import FORMAT

# reasoning_effort -> budget_tokens, for budget models (Anthropic's minimum is 1024).
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576, "xhigh": 32768}
# reasoning_effort -> output_config.effort, for adaptive models; xhigh is the model's highest.
EFFORT_LEVELS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}


class Thinking(NamedTuple):
    """What goes into the request: ``thinking``, ``output_config.effort`` (adaptive) and the
    budget that ``max_tokens`` must stay above (budget models)."""

    thinking: dict
    effort: str | None = None
    budget: int = 0


def thinking_for(effort: str | None, facts: ModelFacts) -> Thinking | None:
    """The thinking a ``reasoning_effort`` asks for on a model of ``facts``; None: thinking off
    (left out: off is the API's default)."""
    if effort is None:
        return None
    if facts.thinking == "budget":
        if effort == "none":
            return None
        budget = EFFORT_BUDGETS[effort]
        return Thinking({"type": "enabled", "budget_tokens": budget}, budget=budget)
    # adaptive (or both: adaptive is the recommended form, enabled is deprecated there)
    if effort == "none":
        if facts.can_disable:
            return None
        level = facts.efforts[0]  # cannot think less than its lowest level
    else:
        level = EFFORT_LEVELS.get(effort) or facts.efforts[-1]
    return Thinking({"type": "adaptive"}, effort=level)


def usable_items(details: object, model: str) -> list[dict]:
    """The ``reasoning_details`` items Anthropic can take back for ``model``: ours, signed, and
    produced by that same model (a signature is only valid for the model that made it; items
    without a ``model`` predate the tag and are kept)."""
    items = []
    for item in details if isinstance(details, list) else ():
        if not isinstance(item, dict) or item.get("format", FORMAT) != FORMAT:
            continue
        if item.get("model", model) != model:
            continue
        signed = item.get("signature") if item.get("type") == "reasoning.text" else None
        redacted = item.get("data") if item.get("type") == "reasoning.encrypted" else None
        if signed or redacted:
            items.append(item)
    return items


def unsigned_tool_turn(messages: tuple[Message, ...], model: str) -> int | None:
    """The index of the assistant message whose tool calls the request continues, if it has no
    thinking ``model`` can take back; None otherwise. That is the last assistant message, when
    no user message follows it (only tool results: the tool loop is still running)."""
    for message in reversed(messages):
        if message.role == "user":
            return None
        if message.role == "assistant":
            if message.tool_calls and not usable_items(message.reasoning_details, model):
                return message.position
            return None
    return None


def missing_thinking(index: int, model: str) -> Exception:
    """The 400 for a model that cannot answer a tool turn without its signed thinking."""
    where = f"messages[{index}]"
    return bad_request(
        f"`{where}` has tool calls but not the `reasoning_details` that came with them, and "
        f"{model} cannot continue a tool turn without that signed thinking (its thinking "
        "cannot be switched off). Send the assistant message back with its "
        "`reasoning_details` exactly as the gateway returned them.",
        param=where + ".reasoning_details",
    )
