"""`pip install edgerelay` gives the server under one import package, `edgerelay`: the wheel
claims no generic top-level name (`core`, `server`, `transports`), so it installs beside any
distribution that ships those and neither breaks the other."""

import base64
import hashlib
import json
import os
import site
import subprocess
import sys
import time
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

from tests.support.loopback import free_port

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from product_layout import package_dirs  # noqa: E402


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    (found,) = out.glob("edgerelay-*.whl")
    return found


def test_the_wheel_holds_one_edgerelay_package_and_the_console_script(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"edgerelay"}
    assert "edgerelay/core/providers/anthropic_stream.py" in names
    assert "edgerelay/server/asgi.py" in names
    assert "edgerelay/transports/aiohttp_fetch.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "edgerelay = edgerelay.server.cli:main" in text


def test_every_package_folder_is_in_the_one_description():
    """A sub-package added under core/ (or edgerelay/) without its line in pyproject.toml
    would be left out of the wheel, the Worker and the Lambda package alike."""
    listed = {folder.resolve() for folder in package_dirs().values()}
    on_disk = {
        init.parent.resolve()
        for top in (ROOT / "core", ROOT / "edgerelay")
        for init in top.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert on_disk == listed


def _dummy_wheel(folder: Path) -> Path:
    """A distribution that ships the generic names the old wheel used to claim."""
    files = {
        "core/__init__.py": b"DUMMY = 'core'\n",
        "server/__init__.py": b"DUMMY = 'server'\n",
        "transports/__init__.py": b"DUMMY = 'transports'\n",
        "dummy-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: dummy\nVersion: 1.0\n",
        "dummy-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("dummy-1.0.dist-info/RECORD,,")
    path = folder / "dummy-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("dummy-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def test_installed_beside_a_distribution_with_core_server_and_transports(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    python = bin_dir / "python"
    dummy = _dummy_wheel(tmp_path)
    for order in ([dummy, wheel], [wheel, dummy]):  # whichever comes second overwrites nothing
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall"]
            + [str(p) for p in order],
            check=True,
            capture_output=True,
            timeout=120,
        )
    # The server's dependencies come from this test's own environment, appended after the new
    # venv's site-packages (a plain path line: this venv's editable install is not picked up).
    (purelib,) = (env_dir / "lib").glob("python3*/site-packages")
    (purelib / "zz_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "EDGERELAY"))}
    probe = (
        "import core, server, transports, edgerelay.core, edgerelay.server.cli;"
        "print(core.DUMMY, server.DUMMY, transports.DUMMY, edgerelay.core.__file__)"
    )
    done = subprocess.run(
        [python, "-c", probe], cwd=tmp_path, env=clean_env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    words = done.stdout.decode().split()
    assert words[:3] == ["core", "server", "transports"]
    assert words[3].startswith(str(purelib / "edgerelay" / "core"))

    port = free_port()
    server = subprocess.Popen(
        [bin_dir / "edgerelay", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        body = json.dumps({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]})
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            data=body.encode(),
            headers={"content-type": "application/json"},
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    reply = json.loads(answer.read())
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "edgerelay serve did not answer"
                time.sleep(0.05)  # waiting for a subprocess to bind, not timing behaviour
        assert reply["choices"][0]["message"]["content"] == "hi"
    finally:
        server.terminate()
        server.wait(timeout=10)
