"""Where the local server writes its log lines: stderr, or the file ``EDGERELAY_LOG_FILE``
names (appended, one JSON object per line). ``EDGERELAY_LOG``: off | errors | all."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

from edgerelay.core.config import parse_level


class LogSink:
    def __init__(self, level: str = "all", stream: TextIO | None = None) -> None:
        self.level = level
        self.stream = stream

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LogSink:
        level = parse_level(env.get("EDGERELAY_LOG"))
        path = (env.get("EDGERELAY_LOG_FILE") or "").strip()
        # Line-buffered: each line reaches the file whole, even if the process is killed.
        stream = open(path, "a", buffering=1, encoding="utf-8") if path and level != "off" else None  # noqa: SIM115
        return cls(level, stream)

    def write(self, log, redactor=None) -> None:
        """``log``'s line, if ``EDGERELAY_LOG`` wants it; ``redactor`` (core.redact) cleans it
        of configured secrets (the line holds none by construction: this is the second lock)."""
        if log is None or not log.wanted(self.level):
            return
        stream = self.stream or sys.stderr  # looked up late: tests and uvicorn swap stderr
        stream.write(log.line(redactor.text if redactor else None) + "\n")
        stream.flush()
