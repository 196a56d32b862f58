"""Run the ``test_*`` functions of tests/pyodide/test_*.py inside Pyodide, truly awaited.

Why not pytest: on Node 20 there is no JSPI, so nothing in Python can block on a
coroutine. ``asyncio.run`` / ``loop.run_until_complete`` on Pyodide's WebLoop only
*schedule* the coroutine and return at once, which lets an async test "pass"
without running (pytest-asyncio and friends rely on exactly that). Here run.mjs
calls ``await pyodide.runPythonAsync("await async_runner.run(...)")`` instead:
Node's own event loop drives every coroutine to completion, and the canary
(test_canary.py) proves on every run that failures after real awaits are seen.

How to write a test (module ``tests/pyodide/test_<name>.py``)::

    import js                      # Node globals: fetch, Request, Response,
                                   # ReadableStream, TransformStream, ...
    from async_runner import timeout

    @timeout(5)                    # optional; default 30 s, then the test fails
    async def test_echo():
        url = js.EDGERELAY_TEST.upstream + "/echo"   # loopback fake upstream
        resp = await js.fetch(url)                   # await JS promises directly
        assert resp.status == 200

Rules: module-level ``def``/``async def`` functions named ``test_*``, no
arguments (no fixtures, no parametrize; write a loop or a helper instead). Plain
``assert`` works; any exception fails the test. Sync tests run too. Setup at
import time is fine; an import error fails the module loudly. Do not call
``asyncio.run``/``run_until_complete``/``pyodide.ffi.run_sync`` anywhere: await.
Tests must not block (no busy loops, no time.sleep): the fake upstream runs on
the same Node event loop and cannot answer while Python holds it.
"""

import asyncio
import importlib
import inspect
import json
import sys
import time
import traceback
from pathlib import Path

DEFAULT_TIMEOUT = 30.0


def timeout(seconds):
    """Decorator: fail the test if it has not finished after ``seconds``."""

    def mark(fn):
        fn.async_runner_timeout = seconds
        return fn

    return mark


def expect_failure(reason):
    """Decorator (strict xfail): the test must raise; passing counts as a failure.

    Meant for harness self-checks such as the canary, not for parking broken tests.
    """

    def mark(fn):
        fn.async_runner_expect_failure = reason
        return fn

    return mark


def _collect(test_dir, only):
    """Yield (test id, function or import error) in file, then definition, order."""
    sys.path.insert(0, str(test_dir))
    for path in sorted(Path(test_dir).glob("test_*.py")):
        if only and path.name not in only:
            continue
        try:
            module = importlib.import_module(path.stem)
            if Path(module.__file__).resolve() != path.resolve():
                raise ImportError(f"module name {path.stem!r} is taken by {module.__file__}")
        except BaseException as exc:  # anything, incl. SystemExit, fails the module
            yield f"{path.name}::<import>", exc
            continue
        funcs = [
            fn
            for name, fn in vars(module).items()
            if name.startswith("test_")
            and inspect.isfunction(fn)
            and fn.__module__ == module.__name__
        ]
        funcs.sort(key=lambda fn: fn.__code__.co_firstlineno)
        for fn in funcs:
            yield f"{path.name}::{fn.__name__}", fn


async def _call(fn):
    if inspect.signature(fn).parameters:
        raise TypeError("async_runner tests take no arguments (no fixtures)")
    result = fn()
    if inspect.isawaitable(result):
        await result


async def run(test_dir, only=(), default_timeout=DEFAULT_TIMEOUT):
    """Run the tests; print one line per test and ``N passed, N failed``; return JSON.

    The JSON is a list of {id, outcome, exc_type, message}; outcome is "passed",
    "failed", "xfailed" (expected failure that failed: counted as passed) or
    "xpassed" (expected failure that passed: counted as failed).
    """
    results = []
    for test_id, fn in _collect(test_dir, set(only)):
        start = time.monotonic()
        exc = fn if isinstance(fn, BaseException) else None
        limit = getattr(fn, "async_runner_timeout", default_timeout)
        if exc is None:
            try:
                await asyncio.wait_for(_call(fn), limit)
            except TimeoutError as e:
                late = time.monotonic() - start >= limit  # ours, not one the test raised
                exc = TimeoutError(f"timed out after {limit} s (deadlock? buffering?)")
                exc = exc if late else e
            except BaseException as e:  # a test's failure is data here
                exc = e
        expected = getattr(fn, "async_runner_expect_failure", None)
        if expected is None:
            outcome = "failed" if exc else "passed"
        else:
            outcome = "xfailed" if exc else "xpassed"
        label = {"passed": "PASS", "failed": "FAIL", "xfailed": "XFAIL", "xpassed": "XPASS"}
        note = f" (expected failure: {expected})" if expected else ""
        print(f"{label[outcome]} {test_id}{note} ({time.monotonic() - start:.2f}s)")
        if exc is not None and outcome == "failed":
            tb = "".join(traceback.format_exception(exc)).rstrip()
            print("    " + tb.replace("\n", "\n    "))
        results.append(
            {
                "id": test_id,
                "outcome": outcome,
                "exc_type": type(exc).__name__ if exc else None,
                "message": str(exc) if exc else None,
            }
        )
    passed = sum(r["outcome"] in ("passed", "xfailed") for r in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return json.dumps(results)
