"""The Cloudflare Worker under the real local runtime: ``wrangler dev`` running workerd with the
offline Python runtime bundle from ``../shared/workerd`` (its README has the recipe).

    with LocalWorker(vars={...}, secrets={...}) as worker:
        httpx.get(worker.url + "/healthz")

Each ``LocalWorker`` gets a folder of its own: the upload folder built there by
workers/cloudflare/build.py (with the vendored SDK next to a generated wrangler.toml, as wrangler
wants it), a fresh ``--persist-to`` state (KV, Durable Objects, caches and rate-limit counters
would otherwise survive from an earlier run), the secrets as an ``--env-file`` and wrangler's
logs. The generated wrangler.toml keeps the repository's name, compatibility date, flags and
``[vars]`` (so "defaults" means what ships), adds the development flag that makes workerd load
the offline bundle, then the test's vars; ``extra_toml`` is appended as is, for bindings
(``[[kv_namespaces]]``, ``[[durable_objects.bindings]]``, ``[[migrations]]``, ...).

Bounded: the start waits for a 200 from ``/healthz`` at most ``start_timeout`` seconds, and the
process group (wrangler and its workerd) is stopped on exit, killed if it lingers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.support.loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
NODE22 = ROOT / "node_modules" / "node" / "bin" / "node"
WRANGLER = ROOT / "node_modules" / "wrangler" / "bin" / "wrangler.js"
WORKERD_BIN = ROOT / "node_modules" / "@cloudflare" / "workerd-linux-64" / "bin" / "workerd"
_DEFAULT_SHARED = ROOT.parent / "shared" / "workerd"
SHARED_WORKERD = Path(os.environ.get("EDGERELAY_SHARED_WORKERD", _DEFAULT_SHARED))
WRAPPER = SHARED_WORKERD / "workerd-with-bundle"
DEV_FLAG = "python_workers_development"


def missing() -> str | None:
    """Why the local runtime cannot start here, or None when it can."""
    if not WRAPPER.exists():
        return (
            f"the offline Python Workers runtime bundle is not at {SHARED_WORKERD} (CI has "
            "../shared/workerd beside the clone; set EDGERELAY_SHARED_WORKERD to use another)"
        )
    if not (NODE22.exists() and WRANGLER.exists() and WORKERD_BIN.exists()):
        return "node_modules has no wrangler/workerd: run `npm ci` (make test-cpython does)"
    return None


def _toml_value(value) -> str:
    # JSON strings, numbers, booleans and arrays of them are valid TOML values.
    return json.dumps(value)


def wrangler_config(vars: Mapping[str, str], extra_toml: str = "") -> str:
    """The test's wrangler.toml: the shipped one's identity and vars, plus ``vars``."""
    shipped = tomllib.loads((ROOT / "wrangler.toml").read_text())
    flags = [*shipped.get("compatibility_flags", []), DEV_FLAG]
    lines = [
        f"name = {_toml_value(shipped['name'] + '-localtest')}",
        'main = "worker/entry.py"',
        f"compatibility_date = {_toml_value(shipped['compatibility_date'])}",
        f"compatibility_flags = {_toml_value(flags)}",
        "",
        "[vars]",
    ]
    merged = {**shipped.get("vars", {}), **vars}
    lines += [f"{name} = {_toml_value(str(value))}" for name, value in merged.items()]
    return "\n".join(lines) + "\n\n" + extra_toml + "\n"


class LocalWorker:
    """The Worker served by ``wrangler dev`` on a free 127.0.0.1 port (a context manager).

    ``vars`` are added to wrangler.toml's ``[vars]``; ``secrets`` reach the Worker as secrets
    do (wrangler's env file; the banner shows them as hidden); ``extra_toml`` is appended to the
    generated wrangler.toml.
    """

    def __init__(
        self,
        vars: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        extra_toml: str = "",
        start_timeout: float = 180.0,
    ) -> None:
        self.vars = dict(vars or {})
        self.secrets = dict(secrets or {})
        self.extra_toml = extra_toml
        self.start_timeout = start_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._process: subprocess.Popen | None = None
        self._log_file = None

    @property
    def folder(self) -> Path:
        assert self._tmp is not None, "not started"
        return Path(self._tmp.name)

    def log(self) -> str:
        """Everything wrangler and the Worker printed so far (console.log included)."""
        path = self.folder / "wrangler.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> LocalWorker:
        reason = missing()
        if reason:
            raise RuntimeError(reason)
        self._tmp = tempfile.TemporaryDirectory(prefix="edgerelay-workerd-")
        folder = self.folder
        build = [sys.executable, str(ROOT / "workers" / "cloudflare" / "build.py")]
        build += ["--out", str(folder / "worker"), "--vendor", str(folder / "python_modules")]
        subprocess.run(build, check=True, capture_output=True, timeout=120)
        (folder / "wrangler.toml").write_text(wrangler_config(self.vars, self.extra_toml))
        env_file = "".join(f"{k}={json.dumps(v)}\n" for k, v in self.secrets.items())
        (folder / "secrets.env").write_text(env_file)
        command = [str(NODE22), str(WRANGLER), "dev", "--config", str(folder / "wrangler.toml")]
        command += ["--env-file", str(folder / "secrets.env")]
        command += ["--ip", "127.0.0.1", "--port", str(self.port)]
        command += ["--inspector-port", str(free_port()), "--persist-to", str(folder / "state")]
        command += ["--show-interactive-dev-session=false", "--log-level", "log"]
        env = {
            **os.environ,
            "MINIFLARE_WORKERD_PATH": str(WRAPPER),
            "WORKERD_BIN": str(WORKERD_BIN),
            "WRANGLER_LOG_PATH": str(folder / "logs"),
            "WRANGLER_SEND_METRICS": "false",
            "NO_COLOR": "1",
        }
        env.pop("CLOUDFLARE_API_TOKEN", None)  # a local run needs no account
        self._log_file = open(folder / "wrangler.out", "wb")  # closed in __exit__
        self._process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: wrangler and workerd stop together
        )
        try:
            self._wait_ready()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self) -> None:
        # Wait for a 200, not for the port: Pyodide's cold load happens on the first request.
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"wrangler dev exited early:\n{self.log()[-4000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=30).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)  # polling a starting process; no test outcome depends on it
        raise RuntimeError(f"no 200 from the Worker within {self.start_timeout} s:\n{self.log()}")

    def __exit__(self, *exc) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(15)
        if self._process is not None:
            try:  # workerd may outlive wrangler's own exit; the group goes with it
                os.killpg(self._process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._log_file is not None:
            self._log_file.close()
        if self._tmp is not None:
            self._tmp.cleanup()
