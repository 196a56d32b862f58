"""`edgerelay serve` sets CPython's garbage collector for serving (server/gc_tuning.py) unless
EDGERELAY_GC=cpython; each check runs in a fresh interpreter, so this process is untouched."""

import json

import pytest

from edgerelay.core import ConfigError
from edgerelay.server import gc_tuning
from tests.server.test_cli import serve
from tests.support.fresh_python import run_python

# Starts `edgerelay serve` with uvicorn's run replaced by the app's own lifespan start-up (the
# HTTP client library is imported in a worker thread then), and reports the collector's state
# once start-up is over: when the app says it is ready, or at once if nothing asked to be told.
PROBE = """
import asyncio, gc, json, sys
import uvicorn
from edgerelay.server import cli

def run(self):
    app = self.config.app

    async def start_up():
        ready = asyncio.Event()
        told = app.on_ready
        if told is None:
            ready.set()
        else:
            app.on_ready = lambda: (told(), ready.set())
        inbox = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})
        lifespan = asyncio.create_task(app({"type": "lifespan"}, inbox.get, inbox.put))
        await asyncio.wait_for(ready.wait(), 30)
        state = {
            "threshold": gc.get_threshold(),
            "frozen": gc.get_freeze_count(),
            "tracked": len(gc.get_objects()),  # the frozen ones are not counted
            "client_library_loaded": "aiohttp" in sys.modules,
        }
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan
        return state

    print(json.dumps(asyncio.run(start_up())))
    self.started = True

uvicorn.Server.run = run
sys.exit(cli.main(["serve", "--port", "9"]))
"""

# A fresh interpreter's own settings (what EDGERELAY_GC=cpython must leave as they are).
CPYTHON = json.loads(
    run_python("import gc, json; print(json.dumps(gc.get_threshold()))", check=True).stdout
)


def collector_at_start(env: dict) -> dict:
    done = run_python(PROBE, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_serve_freezes_start_up_once_the_client_library_is_loaded():
    state = collector_at_start({})
    assert state["threshold"] == [gc_tuning.YOUNG_THRESHOLD, *CPYTHON[1:]]
    assert state["client_library_loaded"]
    assert state["frozen"] > 20_000  # the modules, the app, the HTTP client library
    # Frozen after the library's import, not before it: little is left for the collector
    # (aiohttp alone brings ~12 000 tracked objects).
    assert state["tracked"] < 2_000


def test_edgerelay_gc_cpython_keeps_cpythons_settings():
    state = collector_at_start({"EDGERELAY_GC": "cpython"})
    assert state["threshold"] == CPYTHON
    assert state["frozen"] == 0


def test_a_bad_edgerelay_gc_stops_the_server_at_start_naming_it():
    done = serve({"EDGERELAY_GC": "aggressive-secret"})
    assert done.returncode == 2
    assert "EDGERELAY_GC" in done.stderr and "tuned or cpython" in done.stderr
    assert "aggressive-secret" not in done.stderr and "Traceback" not in done.stderr


def test_the_setting_reads_tuned_cpython_and_nothing_else():
    assert gc_tuning.wanted({}) is True
    assert gc_tuning.wanted({"EDGERELAY_GC": " Tuned "}) is True
    assert gc_tuning.wanted({"EDGERELAY_GC": "cpython"}) is False
    with pytest.raises(ConfigError) as caught:
        gc_tuning.wanted({"EDGERELAY_GC": "off"})
    assert caught.value.setting == "EDGERELAY_GC"


def test_a_higher_threshold_set_before_is_kept():
    code = (
        "import gc; gc.set_threshold(50_000, 5, 5)\n"
        "from edgerelay.server import gc_tuning; gc_tuning.raise_threshold()\n"
        "print(gc.get_threshold())"
    )
    done = run_python(code)
    assert done.stdout.strip() == "(50000, 5, 5)", done.stderr
