"""Provider modules. OpenAI-compatible upstreams pass through; the others translate.

``translation(kind)`` gives the module that translates OpenAI Chat Completions to that kind of
provider and back (see ``base.ChatTranslation``). Each is imported on first use: a Worker or
Lambda cold start pays only for the providers it actually calls.
"""

from __future__ import annotations

from importlib import import_module

from .base import ChatTranslation

_MODULES = {"anthropic": ".anthropic", "gemini": ".gemini"}


def translation(kind: str) -> ChatTranslation | None:
    name = _MODULES.get(kind)
    return import_module(name, __package__) if name is not None else None  # type: ignore[return-value]
