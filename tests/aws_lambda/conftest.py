"""Fixtures for the Lambda target: the loopback fake Runtime API, the lock-step fake upstream,
and the real streaming loop started as Lambda starts it (``stream-wrapper <python> <args…>``)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from tests.aws_lambda.fake_runtime import WAIT, FakeRuntimeAPI
from tests.support.loopback import FakeUpstream
from tests.support.redis_server import redis_url  # noqa: F401  (a fixture)

ROOT = pathlib.Path(__file__).resolve().parents[2]
WRAPPER = ROOT / "functions" / "aws_lambda" / "stream-wrapper"

# Settings of ours or of the providers that the developer's shell may carry: never inherited.
_SCRUB = ("EDGERELAY_", "OPENAI_", "ANTHROPIC_", "GEMINI_", "GOOGLE_", "AWS_LAMBDA_", "_X_AMZN")
# The Lambda refuses anonymous model calls by default (test_lambda_identity.py proves it); the
# transport, streaming and limits tests run as an operator who allowed them explicitly.
ANONYMOUS = {"EDGERELAY_ALLOW_ANONYMOUS": "true"}


@pytest.fixture
def upstream():
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def runtime():
    with FakeRuntimeAPI() as fake:
        yield fake


class LambdaProcess:
    """The streaming loop in a subprocess, as Lambda runs it through the exec wrapper."""

    def __init__(self, runtime: FakeRuntimeAPI, env: dict[str, str]) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
        base.pop("PYTHONPATH", None)
        base.update(
            AWS_LAMBDA_RUNTIME_API=runtime.address,
            LAMBDA_TASK_ROOT=str(ROOT),
            AWS_LAMBDA_FUNCTION_NAME="edgerelay-stream",
            **{**ANONYMOUS, **env},
        )
        # Exactly what Lambda passes: the interpreter, then the managed runtime's own arguments.
        argv = [str(WRAPPER), sys.executable, "/var/runtime/bootstrap.py"]
        self.process = subprocess.Popen(
            argv,
            env=base,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def wait_exit(self) -> int:
        return self.process.wait(WAIT)

    def output(self) -> str:
        return self.process.stdout.read().decode(errors="replace") if self.process.stdout else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: the loop's clean shutdown
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WAIT)
        if self.process.stdout:
            self.process.stdout.close()


@pytest.fixture
def start_loop(runtime):
    """``start_loop(env) -> LambdaProcess`` running against this test's fake Runtime API."""
    started: list[LambdaProcess] = []

    def start(env: dict[str, str] | None = None) -> LambdaProcess:
        process = LambdaProcess(runtime, env or {})
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
