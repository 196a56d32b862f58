"""Assemble what wrangler uploads for the Cloudflare Worker (wrangler.toml's ``[build]`` runs it).

Why a build step: wrangler uploads only the Python modules under the entry's folder and does
not follow symlinks, so with ``main = "workers/cloudflare/entry.py"`` ``core/`` would be left
out; and with ``base_dir = "."`` the Worker's own files would be uploaded as
``workers/cloudflare/*.py``, a package named ``workers`` that shadows Cloudflare's SDK module
``workers``. So the upload folder is built with everything at its top level:

    build/worker/entry.py          the Worker entry (wrangler.toml's ``main``)
    build/worker/js_fetch.py       Fetch over js.fetch
    build/worker/worker_io.py      request/response conversion, stream pump
    build/worker/edgerelay/core/   core as the wheel installs it (scripts/product_layout.py)
    python_modules/...             the Python Workers SDK (``workers-runtime-sdk``), vendored

``python_modules/`` sits next to wrangler.toml because wrangler reads it from the project root
(and refuses one inside the upload folder). With a current compatibility date the runtime no
longer provides ``workers`` itself; ``pywrangler sync`` would vendor the SDK from PyPI, this
script does the same offline from the pinned wheel (fetched once into the wheel cache that the
Pyodide tests share, and checked against its sha256).

Usage: python3 workers/cloudflare/build.py [--out build/worker]   (standard library only)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from product_layout import copy_packages  # noqa: E402  (the one description of the product)

HERE = Path(__file__).resolve().parent
WORKER_MODULES = (
    "entry.py",
    "js_fetch.py",
    "kv_cache.py",
    "webcrypto_verify.py",
    "worker_io.py",
    "limits_object.py",
    "durable_store.py",
    "durable_responses.py",
    "durable_cache.py",
    "request_log.py",
)
SDK_VERSION = "1.9.5"
SDK_WHEEL = f"workers_runtime_sdk-{SDK_VERSION}-py3-none-any.whl"
SDK_SHA256 = "f2b912660a3ab60d2a24920106422f9eaf4cd7a794e42b022237ad2444287fef"
# Module names that must never be uploaded from our side: they would shadow the platform's.
FORBIDDEN = ("workers", "js", "pyodide", "httpx")


def wheel_cache() -> Path:
    return Path(os.environ.get("PYODIDE_WHEEL_CACHE", ROOT / ".cache" / "pyodide-wheels"))


def sdk_wheel() -> Path:
    """The pinned SDK wheel from the cache, downloaded (PyPI, no dependencies) if missing."""
    path = wheel_cache() / SDK_WHEEL
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        pip += ["--only-binary=:all:", "-d", str(path.parent)]
        pip.append(f"workers-runtime-sdk=={SDK_VERSION}")
        subprocess.run(pip, check=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SDK_SHA256:
        raise SystemExit(f"build.py: {path} has sha256 {digest}, expected {SDK_SHA256}")
    return path


def build(out: Path, vendor: Path) -> int:
    """Build the upload folder and the vendored SDK; return the bytes of our own code."""
    shutil.rmtree(out, ignore_errors=True)  # nothing stale may be uploaded
    out.mkdir(parents=True)
    for name in WORKER_MODULES:
        shutil.copyfile(HERE / name, out / name)
    copy_packages(out, ["edgerelay.core"], ROOT)
    for name in FORBIDDEN:
        if (out / name).exists() or (out / f"{name}.py").exists():
            raise SystemExit(f"build.py: {name} must not be uploaded from {out}")

    shutil.rmtree(vendor, ignore_errors=True)
    with zipfile.ZipFile(sdk_wheel()) as wheel:
        wheel.extractall(vendor)
    # As `pywrangler sync` leaves it: the folder is a site-packages of its own.
    (vendor / "pyvenv.cfg").touch()
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "worker")
    parser.add_argument("--vendor", type=Path, default=ROOT / "python_modules")
    args = parser.parse_args(argv)
    size = build(args.out.resolve(), args.vendor.resolve())
    print(f"build.py: {args.out} ready ({size / 1024:.1f} KiB of our code) + SDK {SDK_VERSION}")


if __name__ == "__main__":
    main()
