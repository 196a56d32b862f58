"""A feature's code is imported only when the configuration turns the feature on: an app built
without rate limits imports nothing of the limits package (what each cold start would otherwise
pay for), and one with limits does."""

from __future__ import annotations

import json
import subprocess
import sys

CHECK = """
import json, sys
from edgerelay.server.asgi import create_app

create_app(json.loads(sys.argv[1]))
print(json.dumps(sorted(m for m in sys.modules if m.startswith("edgerelay.core.limits"))))
"""


def limits_modules(env: dict) -> list[str]:
    env = {"OPENAI_API_KEY": "sk-test", **env}
    out = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps(env)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return json.loads(out)


def test_without_limits_nothing_of_the_limits_package_is_imported():
    assert limits_modules({}) == []


def test_with_limits_the_admission_is_imported():
    limited = {"EDGERELAY_CONFIG": "[policies.default]\nrequests_per_minute = 60\n"}
    assert "edgerelay.core.limits.admission" in limits_modules(limited)
