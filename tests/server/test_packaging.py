"""`pip install edgerelay` gives the server: the wheel holds core, transports and server (not
the tests, the Worker or the Lambda code) and the `edgerelay` console script."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_the_server_packages_and_the_console_script(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("edgerelay-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {"core", "transports", "server"} <= tops
    assert not tops & {"tests", "workers", "functions", "bench", "examples"}
    assert "core/providers/anthropic_stream.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "edgerelay = server.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
