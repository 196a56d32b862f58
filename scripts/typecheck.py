"""Type-check the product as it installs: mypy over edgerelay (core included) and the Lambda code.

``core/`` installs as ``edgerelay.core`` through setuptools' package-dir, which mypy cannot
follow from the source tree. So this lays the product out by import name as links under
``build/typecheck/`` (from the same package table the wheel, the Worker and Lambda use), runs
mypy there, and prints its findings with the repository's own paths.

Usage: python3 scripts/typecheck.py [extra mypy arguments]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from product_layout import ROOT, package_dirs

TREE = ROOT / "build" / "typecheck"
# Checked besides the installed packages: the Lambda handlers (a namespace package in the zip).
EXTRA = {"functions.aws_lambda": ROOT / "functions" / "aws_lambda"}


def link_tree() -> dict[str, str]:
    """Link every product module under TREE by its import path; return link prefix → source."""
    shutil.rmtree(TREE, ignore_errors=True)
    back: dict[str, str] = {}
    for name, folder in {**package_dirs(), **EXTRA}.items():
        target = TREE / Path(*name.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(folder.glob("*.py")):
            (target / source.name).symlink_to(source)
        back[str(target.relative_to(TREE)) + os.sep] = str(folder.relative_to(ROOT)) + os.sep
    return back


def main(argv: list[str]) -> int:
    back = link_tree()
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")]
    command += ["edgerelay", "functions", *argv]
    done = subprocess.run(command, cwd=TREE, capture_output=True, text=True)
    # Longest prefix first, so edgerelay/core/ wins over edgerelay/.
    prefixes = sorted(back, key=len, reverse=True)
    for line in (done.stdout + done.stderr).splitlines():
        for prefix in prefixes:
            if line.startswith(prefix):
                line = back[prefix] + line[len(prefix) :]
                break
        print(line)
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
