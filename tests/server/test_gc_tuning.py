"""`edgerelay serve` sets CPython's garbage collector for serving (server/gc_tuning.py) unless
EDGERELAY_GC=default; each check runs in a fresh interpreter, so this process is untouched."""

import gc
import json
import os
import subprocess
import sys

import pytest

from edgerelay.core import ConfigError
from edgerelay.server import gc_tuning
from tests.server.test_cli import serve

# Starts `edgerelay serve` with uvicorn's run replaced by a report of the collector's state at
# the moment the server would start serving.
PROBE = """
import gc, json, sys
import uvicorn
from edgerelay.server import cli

def run(self):
    print(json.dumps({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
    self.started = True

uvicorn.Server.run = run
sys.exit(cli.main(["serve", "--port", "9"]))
"""


def collector_at_start(env: dict) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EDGERELAY_", "OPENAI_"))}
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_serve_freezes_what_start_up_built_and_raises_the_young_threshold():
    state = collector_at_start({})
    assert state["threshold"][0] == gc_tuning.YOUNG_THRESHOLD
    assert state["threshold"][1:] == list(gc.get_threshold()[1:])  # the older ones as they were
    assert state["frozen"] > 10_000  # the modules, the app and its configuration


def test_edgerelay_gc_default_keeps_cpythons_settings():
    state = collector_at_start({"EDGERELAY_GC": "default"})
    assert state["threshold"] == list(gc.get_threshold())
    assert state["frozen"] == 0


def test_a_bad_edgerelay_gc_stops_the_server_at_start_naming_it():
    done = serve({"EDGERELAY_GC": "aggressive-secret"})
    assert done.returncode == 2
    assert "EDGERELAY_GC" in done.stderr and "tuned or default" in done.stderr
    assert "aggressive-secret" not in done.stderr and "Traceback" not in done.stderr


def test_the_setting_reads_tuned_default_and_nothing_else():
    assert gc_tuning.wanted({}) is True
    assert gc_tuning.wanted({"EDGERELAY_GC": " Tuned "}) is True
    assert gc_tuning.wanted({"EDGERELAY_GC": "default"}) is False
    with pytest.raises(ConfigError) as caught:
        gc_tuning.wanted({"EDGERELAY_GC": "off"})
    assert caught.value.setting == "EDGERELAY_GC"


def test_a_higher_threshold_set_before_is_kept():
    code = (
        "import gc; gc.set_threshold(50_000, 5, 5)\n"
        "from edgerelay.server import gc_tuning; gc_tuning.tune_for_serving()\n"
        "print(gc.get_threshold())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "(50000, 5, 5)", done.stderr
