"""`edgerelay serve` as a user starts it: a bad setting is named at start, never a traceback."""

import os
import subprocess
import sys


def serve(env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EDGERELAY_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--port", "9"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_bad_setting_stops_the_server_at_start_naming_it():
    done = serve({"EDGERELAY_MAX_BODY_BYTES": "lots", "OPENAI_API_KEY": "sk-secret-value"})
    assert done.returncode == 2
    assert "EDGERELAY_MAX_BODY_BYTES" in done.stderr
    assert "Traceback" not in done.stderr
    assert "sk-secret-value" not in done.stderr + done.stdout


def test_a_bad_config_file_path_is_named():
    done = serve({"EDGERELAY_CONFIG": "/nonexistent/edgerelay.toml"})
    assert done.returncode == 2
    assert "EDGERELAY_CONFIG" in done.stderr and "Traceback" not in done.stderr


def test_the_banner_says_where_and_which_providers_answer_without_keys():
    from core import load_config
    from server.cli import banner

    text = banner(load_config({"ANTHROPIC_API_KEY": "sk-ant-secret"}), "127.0.0.1", 8787)
    assert "http://127.0.0.1:8787" in text
    assert "mock/echo, anthropic" in text
    assert "sk-ant-secret" not in text
    local = load_config({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"})
    assert "mock/echo, openai" in banner(local, "0.0.0.0", 80)  # a local server needs no key
