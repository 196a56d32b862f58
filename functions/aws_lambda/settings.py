"""Settings only the Lambda target has, from the environment, with ``core.load_config``'s rules:
every setting has a default, and a bad value raises ``ConfigError`` naming it.

A browser that goes away does not stop a streaming Lambda (it keeps running and billing), so
every stream is capped in time and size; and the function must end its stream cleanly before
Lambda's own deadline kills it mid-write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edgerelay.core import ConfigError

# Lambda's hard limit on a streamed response is 200 MB; stay clearly below it by default.
DEFAULT_MAX_STREAM_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_STREAM_SECONDS = 300.0
DEFAULT_DEADLINE_MARGIN_MS = 1000


@dataclass(frozen=True, slots=True)
class LambdaSettings:
    max_stream_seconds: float = DEFAULT_MAX_STREAM_SECONDS  # per response, from its start
    max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES  # body bytes per response
    deadline_margin: float = DEFAULT_DEADLINE_MARGIN_MS / 1000  # seconds kept before the deadline


def load_settings(env: Mapping[str, str]) -> LambdaSettings:
    seconds = _number("EDGERELAY_MAX_STREAM_SECONDS", env, float, DEFAULT_MAX_STREAM_SECONDS)
    size = _number("EDGERELAY_MAX_STREAM_BYTES", env, int, DEFAULT_MAX_STREAM_BYTES)
    margin = _number("EDGERELAY_DEADLINE_MARGIN_MS", env, int, DEFAULT_DEADLINE_MARGIN_MS)
    return LambdaSettings(seconds, size, margin / 1000)


def _number(name: str, env: Mapping[str, str], kind: type, default):
    raw = env.get(name)
    raw = raw.strip() if isinstance(raw, str) else ""
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        # Never the value: a key pasted into the wrong variable must not reach a log line.
        raise ConfigError(name, f"must be {what}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(name, "must be a positive finite number")
    return value
