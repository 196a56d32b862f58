"""The Worker's own modules on CPython over stand-in platform modules (fake_platform.py)."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest

from tests.workers import fake_platform as fake

SOURCE = Path(__file__).resolve().parents[2] / "workers" / "cloudflare"
MODULES = (
    "entry",
    "js_fetch",
    "kv_cache",
    "webcrypto_verify",
    "worker_io",
    "request_log",
    "limits_object",
    "durable_store",
    "durable_responses",
    "durable_cache",
)


@pytest.fixture
def worker(monkeypatch):
    """The Worker's modules imported from source over fresh fakes; all removed afterwards."""
    js = fake.make_js()
    pyodide, ffi = fake.make_pyodide()
    for name, module in (
        ("js", js),
        ("pyodide", pyodide),
        ("pyodide.ffi", ffi),
        ("workers", fake.make_workers()),
    ):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.syspath_prepend(str(SOURCE))
    for name in MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    modules = {name: importlib.import_module(name) for name in MODULES}
    yield types.SimpleNamespace(js=js, jsnull=ffi.jsnull, **modules)
    for name in MODULES:
        sys.modules.pop(name, None)
