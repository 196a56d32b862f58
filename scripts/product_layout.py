"""Which files make the product, read from pyproject.toml's ``[tool.setuptools]`` table.

That table is the one description: the wheel is built from it by setuptools, and the Worker's
upload folder (``workers/cloudflare/build.py``) and the Lambda package
(``functions/aws_lambda/Makefile``) are assembled from it by this module, so a new module or
sub-package under ``core/`` reaches all three. Standard library only.

Usage: python3 scripts/product_layout.py DEST PACKAGE [PACKAGE ...]
copies each named package with every listed sub-package below it (Python files only) into DEST,
and the ``__init__.py`` of the packages above it.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """Every package the wheel installs, with the folder its files come from."""
    table = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
    mapping: dict[str, str] = table.get("package-dir", {})
    dirs = {}
    for name in table["packages"]:
        # The nearest mapped ancestor decides the folder (setuptools' own rule).
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            base = ".".join(parts[:cut])
            if base in mapping:
                dirs[name] = root / mapping[base] / Path(*parts[cut:])
                break
        else:
            dirs[name] = root / Path(*parts)
    return dirs


def copy_packages(dest: Path, names: list[str], root: Path = ROOT) -> list[Path]:
    """Copy the named packages and their listed sub-packages' ``.py`` files under ``dest``
    (laid out by import name), and return the files written."""
    dirs = package_dirs(root)
    unknown = [want for want in names if want not in dirs]
    if unknown:
        raise SystemExit(f"product_layout: not a package of the product: {', '.join(unknown)}")
    written = []
    for name, folder in dirs.items():
        whole = any(name == want or name.startswith(want + ".") for want in names)
        above = any(want.startswith(name + ".") for want in names)
        if not (whole or above):
            continue
        target = dest / Path(*name.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for source in sorted(folder.glob("*.py") if whole else [folder / "__init__.py"]):
            shutil.copyfile(source, target / source.name)
            written.append(target / source.name)
    return written


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__.strip().splitlines()[-2])
    copy_packages(Path(argv[0]), argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
