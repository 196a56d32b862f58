"""Python code run in a fresh interpreter, for what a test must not do to its own process
(imports it checks for, the garbage collector's settings): the environment without the
outer run's EDGERELAY_* and OPENAI_* settings, plus ``env``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def run_python(
    code: str, *args: str, env: Mapping[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EDGERELAY_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=check,
    )
