"""Runs under CPython and under Pyodide (tests/pyodide/run.mjs), proving which is which.

run.mjs sets EDGERELAY_PYODIDE=1 inside Pyodide, so if these tests pass there the
suite really executed on Emscripten/wasm32, not on a host interpreter.
"""

import importlib.util
import os
import platform
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def running_in_pyodide():
    return sys.platform == "emscripten"


def test_platform_matches_harness():
    in_harness = os.environ.get("EDGERELAY_PYODIDE") == "1"
    assert running_in_pyodide() == in_harness
    if in_harness:
        assert platform.machine() == "wasm32"
        assert "pyodide" in sys.modules or importlib.util.find_spec("pyodide") is not None


def test_core_package_resolves_from_repo():
    # Only locates `core`; importing it is the core suite's job.
    spec = importlib.util.find_spec("core")
    assert spec is not None
    locations = [Path(p).resolve() for p in spec.submodule_search_locations]
    assert REPO / "core" in locations


def test_hypothesis_runs():
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    seen = []

    @hypothesis.settings(max_examples=20, database=None, deadline=None)
    @hypothesis.given(st.binary(max_size=64))
    def roundtrip(data):
        seen.append(data)
        assert bytes.fromhex(data.hex()) == data

    roundtrip()
    assert seen
