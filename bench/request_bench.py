"""Gateway CPU to translate one chat request for Anthropic and for Gemini (``build_request``:
messages checked and translated, fields mapped, the body written), and for the second provider
of a fallback chain, which reuses the messages already checked.

The request is a 21-message tool conversation (a system prompt; five rounds of a user question
with an inline image, an assistant tool call, its result and an answer). Figures are the fastest
single call of ``--rounds`` x ``--calls`` (``time.perf_counter``), which filters out the noise of
a shared machine better than a mean. Bounded by count; nothing here is a test.

Usage: python bench/request_bench.py [--calls N] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgerelay.core.chat import parse_chat_request
from edgerelay.core.config import load_config
from edgerelay.core.providers import anthropic, gemini
from edgerelay.core.providers.base import ChatContext
from edgerelay.core.routing import route_model

CONFIG = load_config({"ANTHROPIC_API_KEY": "k", "GEMINI_API_KEY": "k"})
IMAGE = "data:image/png;base64," + "iVBORw0KGgo" * 40


def conversation() -> list[dict]:
    """The 21 messages every translation below starts from."""
    messages: list[dict] = [{"role": "system", "content": "You are helpful. " * 20}]
    for i in range(5):
        question = [
            {"type": "text", "text": f"question {i} " * 30},
            {"type": "image_url", "image_url": {"url": IMAGE}},
        ]
        arguments = json.dumps({"city": "Paris", "days": i, "units": "metric"})
        call = {"id": f"call_{i}", "type": "function"}
        call["function"] = {"name": "weather", "arguments": arguments}
        messages += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call_{i}", "content": '{"temp": 18}'},
            {"role": "assistant", "content": [{"type": "text", "text": "It is sunny. " * 10}]},
        ]
    return messages


def fastest(providers: tuple, calls: int, rounds: int) -> float:
    """µs of the last provider's ``build_request``, the ones before it run first on the same
    request (a fallback chain)."""
    best = float("inf")
    raw = json.dumps({"model": "x", "messages": conversation(), "max_tokens": 500}).encode()
    for _ in range(rounds):
        for _ in range(calls):
            chat = parse_chat_request(raw)
            for provider, model in providers[:-1]:
                provider.build_request(chat, route_model(model, CONFIG), CONFIG, _ctx())
            provider, model = providers[-1]
            route = route_model(model, CONFIG)
            ctx = _ctx()
            start = time.perf_counter()
            provider.build_request(chat, route, CONFIG, ctx)
            best = min(best, time.perf_counter() - start)
    return best * 1e6


def _ctx() -> ChatContext:
    return ChatContext.lazy(time.time, lambda: "id", False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    claude = (anthropic, "anthropic/claude-sonnet-4-5")
    flash = (gemini, "gemini/gemini-2.5-flash")
    print(f"python {sys.version.split()[0]}, fastest of {args.rounds} x {args.calls} calls")
    for name, providers in (
        ("anthropic", (claude,)),
        ("gemini", (flash,)),
        ("gemini after anthropic (fallback)", (claude, flash)),
    ):
        print(f"{name:34} {fastest(providers, args.calls, args.rounds):8.1f} µs")


if __name__ == "__main__":
    main()
