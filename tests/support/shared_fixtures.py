"""The real recorded provider captures in ../shared/fixtures (present in CI beside the
checkout, absent from a user's clone). Tests that use them skip, with the reason, without it."""

from __future__ import annotations

import json
import os
import pathlib

_DEFAULT = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
ROOT = pathlib.Path(os.environ.get("EDGERELAY_SHARED_FIXTURES", _DEFAULT))
MISSING_REASON = f"recorded captures not found at {ROOT} (only CI has ../shared beside the clone)"


def available() -> bool:
    return ROOT.is_dir()


def path(name: str) -> pathlib.Path:
    return ROOT / name


def body(name: str) -> bytes:
    return (ROOT / name).read_bytes()


def headers(name: str) -> dict:
    meta = json.loads((ROOT / (name + ".headers.json")).read_text())
    return {k.lower(): v[0] if isinstance(v, list) else v for k, v in meta["headers"].items()}


def names(provider: str, prefix: str = "") -> list[str]:
    if not available():
        return []
    folder = ROOT / provider
    return sorted(
        f"{provider}/{p.name}"
        for p in folder.iterdir()
        if p.name.startswith(prefix) and not p.name.endswith(".headers.json")
    )
