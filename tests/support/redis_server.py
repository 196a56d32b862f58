"""A real ``redis-server`` on a free loopback port for the tests (Debian's package; .ci/run
installs it). Started without persistence; ready once it says so on stdout."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.loopback import free_port

MISSING_REASON = "redis-server is not installed (apt-get install redis-server; .ci/run does)"


def available() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(200):  # bounded: a few dozen lines of banner at most
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError("redis-server exited before it was ready")
            if "Ready to accept connections" in line:
                break
        else:
            raise RuntimeError("redis-server never said it was ready")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.process.stdout.close()


@pytest.fixture(scope="session")
def redis_url():
    """A real redis-server on loopback for the session (tests flush it when they need it
    empty). Imported by the conftest of each folder that uses it."""
    if not available():
        pytest.skip(MISSING_REASON)
    server = RedisServer()
    yield server.url
    server.stop()
