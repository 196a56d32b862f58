"""What wrangler would upload for the Cloudflare Worker, proven offline.

``wrangler deploy --dry-run --outdir`` runs wrangler.toml's ``[build]`` (workers/cloudflare/
build.py) and writes the exact module set it would upload, without an account or network.
wrangler needs Node >= 22: the npm package ``node`` (pinned in package.json) provides it, so
this runs on a machine whose own Node is 20. Also checked: the compatibility date selects the
Pyodide line the offline tests run on.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE22 = ROOT / "node_modules" / "node" / "bin" / "node"
WRANGLER = ROOT / "node_modules" / "wrangler" / "bin" / "wrangler.js"
WORKER_MODULES = {"entry.py", "js_fetch.py", "webcrypto_verify.py", "worker_io.py"}
SDK_VERSION = "1.9.5"
# python_workers_314 (Python 3.14, Pyodide 314.0.x) is on by default from this date on
# (workerd's compatibility-date.capnp; pywrangler's PYTHON_COMPAT_VERSIONS says the same).
PY314_DEFAULT_ON = datetime.date(2026, 9, 8)


def wrangler_toml() -> dict:
    return tomllib.loads((ROOT / "wrangler.toml").read_text())


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    if not (NODE22.exists() and WRANGLER.exists()):
        message = "node_modules missing: run `npm ci` (make test-cpython does)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must never skip the upload proof
        pytest.skip(message)
    out = tmp_path_factory.mktemp("wrangler-out")
    env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "CI": "1", "NO_COLOR": "1"}
    env.pop("CLOUDFLARE_API_TOKEN", None)  # a dry run needs no account
    result = subprocess.run(
        [str(NODE22), str(WRANGLER), "deploy", "--dry-run", "--outdir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    return out, files, log


def test_build_ran_and_the_upload_holds_core_and_the_entry(dry_run):
    out, files, log = dry_run
    assert "[custom build] Running: python3 workers/cloudflare/build.py" in log
    # core/ is uploaded as the wheel installs it: edgerelay/core/ (sub-packages too).
    core = {"edgerelay/" + p.relative_to(ROOT).as_posix(): p for p in (ROOT / "core").rglob("*.py")}
    assert core and set(core) <= files
    assert "edgerelay/__init__.py" in files
    assert files >= WORKER_MODULES
    # Byte for byte what is in the repository: no stale copy from an earlier build.
    sources = {**core, **{name: ROOT / "workers" / "cloudflare" / name for name in WORKER_MODULES}}
    for name, source in sources.items():
        assert (out / name).read_bytes() == source.read_bytes(), name
    # Uploaded as Python modules (wrangler's table: name, type, size).
    for name in ("entry.py", "edgerelay/core/gateway.py", "js_fetch.py"):
        if name != "entry.py":  # the entry is the main module, not an "additional" one
            assert re.search(rf"{re.escape(name)}\s*│\s*python\s*│", log), name


def test_nothing_of_ours_under_a_top_level_workers_package(dry_run):
    _, files, _ = dry_run
    ours = {f for f in files if not f.startswith("python_modules/") and f != "README.md"}
    assert not [f for f in ours if f.startswith("workers/")]
    assert not [f for f in ours if Path(f).name in ("js.py", "workers.py", "httpx.py")]
    assert not [f for f in ours if Path(f).parts[0] in ("js", "pyodide", "httpx")]
    assert not [f for f in ours if not f.endswith(".py")]
    assert not [f for f in ours if "__pycache__" in f or f.endswith("build.py")]


def test_the_python_sdk_is_vendored(dry_run):
    _, files, log = dry_run
    for name in ("workers/__init__.py", "workers/entrypoints.py", "workers/response.py"):
        assert f"python_modules/{name}" in files
    assert f"python_modules/workers_runtime_sdk-{SDK_VERSION}.dist-info/METADATA" in files
    assert "Vendored Modules" in log


def test_own_code_size(dry_run, capsys):
    out, files, _ = dry_run
    ours = [f for f in files if not f.startswith("python_modules/") and f.endswith(".py")]
    size = sum((out / f).stat().st_size for f in ours)
    worker = sum((out / f).stat().st_size for f in ours if f in WORKER_MODULES)
    with capsys.disabled():
        print(
            f"\n    upload: {size / 1000:.1f} kB of our code ({len(ours)} modules;"
            f" Worker adapter {worker / 1000:.1f} kB, core {(size - worker) / 1000:.1f} kB)"
        )
    # The request path stays thin (the stores: Durable Object, KV, are modules of their own);
    # 31 kB since it wires the limits, cache and responses stores into the Gateway; 32 kB since
    # the cache's shared upstream call is kept alive by the request that started it.
    assert worker < 32_000  # core's size is core's business


def test_sdk_pin_is_the_one_the_pyodide_tests_install():
    pins = (ROOT / "tests" / "pyodide" / "requirements.txt").read_text()
    assert f"workers-runtime-sdk=={SDK_VERSION}" in pins
    build = (ROOT / "workers" / "cloudflare" / "build.py").read_text()
    assert f'SDK_VERSION = "{SDK_VERSION}"' in build


def test_compatibility_date_selects_the_tested_pyodide_line():
    config = wrangler_toml()
    assert config["main"] == "build/worker/entry.py"
    assert config["build"]["command"] == "python3 workers/cloudflare/build.py"
    flags = config["compatibility_flags"]
    assert "python_workers" in flags and "no_python_workers_314" not in flags
    date = datetime.date.fromisoformat(config["compatibility_date"])
    assert date >= PY314_DEFAULT_ON or "python_workers_314" in flags
    # The tests run on the npm pyodide 314.x, i.e. Python 3.14, the same line.
    package = json.loads((ROOT / "package.json").read_text())
    assert package["devDependencies"]["pyodide"].startswith("314.")
    lock = ROOT / "node_modules" / "pyodide" / "pyodide-lock.json"
    if lock.exists():
        assert json.loads(lock.read_text())["info"]["python"].startswith("3.14.")
    # Not later than the runtime bundled with the pinned wrangler supports (wrangler dev
    # would otherwise fall back to an older date, i.e. an older Python).
    workerd = ROOT / "node_modules" / "workerd" / "package.json"
    if workerd.exists():
        version = json.loads(workerd.read_text())["version"]  # 1.YYYYMMDD.N
        supported = datetime.datetime.strptime(version.split(".")[1], "%Y%m%d").date()
        assert date <= supported


def test_wrangler_and_node22_are_pinned_exactly():
    dev = json.loads((ROOT / "package.json").read_text())["devDependencies"]
    assert re.fullmatch(r"4\.\d+\.\d+", dev["wrangler"])
    assert re.fullmatch(r"22\.\d+\.\d+", dev["node"])
