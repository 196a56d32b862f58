"""Run pytest inside Pyodide and hand the counts back to run.mjs.

Only sync tests work this way (no JSPI on Node 20: see async_runner.py). The
counts feed the harness's combined closing line; pytest still prints its own
report and summary line as usual.
"""

import importlib.util
import json

import pytest


class _Counts:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def pytest_runtest_logreport(self, report):
        # xfail/xpass(non-strict) are reported as skipped/passed by pytest itself.
        if report.failed:
            self.failed += 1
        elif report.when == "call" and report.passed:
            self.passed += 1
        elif report.skipped and report.when in ("setup", "call"):
            self.skipped += 1

    def pytest_collectreport(self, report):
        if report.failed:  # import errors in test modules
            self.failed += 1


class _AcceptTimeoutIni:
    """pyproject sets pytest-timeout's `timeout`; that plugin cannot work here (no
    threads, no SIGALRM timers), so only declare the key to avoid an unknown-option
    warning. run.mjs's whole-run watchdog (PYODIDE_RUN_TIMEOUT) bounds hangs instead."""

    def pytest_addoption(self, parser):
        parser.addini("timeout", "pytest-timeout's per-test limit; ignored under Pyodide")


def run(args):
    counts = _Counts()
    plugins = [counts]
    if importlib.util.find_spec("pytest_timeout") is None:
        plugins.append(_AcceptTimeoutIni())
    code = pytest.main(list(args), plugins=plugins)
    return json.dumps(
        {
            "exit": int(code),
            "passed": counts.passed,
            "failed": counts.failed,
            "skipped": counts.skipped,
        }
    )
