"""The id source every adapter injects into ``Gateway`` (core itself never draws randomness
inline: tests inject counting ids, and this is the one production source)."""

from __future__ import annotations

import os


def new_id() -> str:
    """24 hex characters from the OS's random source (96 bits: never repeats in practice)."""
    return os.urandom(12).hex()
