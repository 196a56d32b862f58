"""Fixtures of the browser tests: the demo page on its own origin and headless Chromium."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from tests.server.conftest import gateway_for, upstream  # noqa: F401  (shared fixtures)
from tests.support.loopback import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGE_DIR = Path(__file__).resolve().parents[2] / "examples" / "browser"


@pytest.fixture
def page_origin():
    """The demo page on its own origin (another port), as a real frontend would be."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(PAGE_DIR))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Chromium is missing: .ci/run installs the Debian package"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()
