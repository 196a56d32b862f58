"""Provider modules. OpenAI-compatible upstreams pass through; the others translate.

``TRANSLATIONS`` maps a provider kind to the module that translates OpenAI Chat Completions to
it and back (see ``base.ChatTranslation``).
"""

from __future__ import annotations

from . import anthropic, gemini
from .base import ChatTranslation

TRANSLATIONS: dict[str, ChatTranslation] = {
    "anthropic": anthropic,
    "gemini": gemini,
}
