"""Fixtures for tests of the Worker under the real local runtime (harness.py).

Each start costs seconds (wrangler, workerd, Pyodide's cold load), so workers are started per
module: ``start_worker(vars=..., secrets=..., extra_toml=...)`` from a module-scoped fixture,
all stopped when the module ends. Without ../shared/workerd the tests skip saying why, except
in CI, which has it and must never skip them.
"""

from __future__ import annotations

import os

import pytest

from tests.workerd.harness import LocalWorker, missing


@pytest.fixture(scope="module")
def start_worker():
    """``start_worker(**LocalWorker kwargs) -> LocalWorker``, running until the module ends."""
    reason = missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI has ../shared/workerd: a skip there would hide a break
        pytest.skip(reason)
    started: list[LocalWorker] = []

    def start(**kwargs) -> LocalWorker:
        worker = LocalWorker(**kwargs).__enter__()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.__exit__(None, None, None)
