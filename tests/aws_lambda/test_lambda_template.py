"""The SAM template, linted offline: the SAM transform (aws-sam-translator, no network) and then
cfn-lint on the result, so a wrong enum fails here and not at deploy time. What the linter cannot
see is asserted on the transformed template: the REST API integration really streams (a wrong
value there silently gives a buffered API), explicit timeouts, a regional endpoint, a pinned
runtime. And the package the Makefile builds holds only our code."""

from __future__ import annotations

import json
import os
import pathlib
import re
import stat
import subprocess
import sys

import pytest

pytest.importorskip("samtranslator")
pytest.importorskip("cfnlint")

from cfnlint.api import ManualArgs, lint
from cfnlint.decode import decode_str
from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = ROOT / "functions" / "aws_lambda"
TEMPLATE = (HERE / "template.yaml").read_text()
REGION = "us-east-1"


@pytest.fixture(autouse=True)
def region(monkeypatch):
    # The transform builds ARNs for "the" region; offline, it has to be told which.
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


def transform(text: str) -> dict:
    template, matches = decode_str(text)
    assert not matches, matches
    template = json.loads(json.dumps(template, default=str))
    # As `sam package` does: local code becomes an S3 location before the transform runs.
    template["Globals"]["Function"]["CodeUri"] = "s3://edgerelay-artifacts/build.zip"
    translator = Translator(managed_policy_map={}, sam_parser=Parser())
    return translator.translate(sam_template=template, parameter_values={})


def lint_errors(transformed: dict) -> list[str]:
    matches = lint(json.dumps(transformed), config=ManualArgs(regions=[REGION]))
    return [str(m) for m in matches]


def problems(text: str) -> list[str]:
    """Everything the transform or the linter reports about a template."""
    try:
        transformed = transform(text)
    except InvalidDocumentException as exc:
        return [f"transform: {cause}" for cause in exc.causes]
    return lint_errors(transformed)


def resources(transformed: dict, kind: str) -> dict:
    return {k: v for k, v in transformed["Resources"].items() if v["Type"] == kind}


def rest_integrations(transformed: dict) -> list[dict]:
    found = []
    for api in resources(transformed, "AWS::ApiGateway::RestApi").values():
        for methods in api["Properties"]["Body"]["paths"].values():
            for method in methods.values():
                found.append(method["x-amazon-apigateway-integration"])
    return found


def assert_rest_api_streams(transformed: dict) -> None:
    integrations = rest_integrations(transformed)
    assert integrations
    for integration in integrations:
        uri = json.dumps(integration["uri"])
        assert "/2021-11-15/functions/" in uri and uri.endswith('/response-streaming-invocations"}')
        assert integration["responseTransferMode"] == "STREAM"


def test_template_transforms_and_lints_clean():
    assert problems(TEMPLATE) == []


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("InvokeMode: RESPONSE_STREAM", "InvokeMode: STREAMING"),
        ("AuthType: NONE", "AuthType: PUBLIC"),
        ("Runtime: python3.13", "Runtime: python3.99"),
    ],
)
def test_a_broken_value_fails_the_lint(good, bad):
    assert good in TEMPLATE
    assert problems(TEMPLATE.replace(good, bad))


def test_the_rest_api_really_streams_from_a_regional_endpoint():
    transformed = transform(TEMPLATE)
    assert_rest_api_streams(transformed)
    (api,) = resources(transformed, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["EndpointConfiguration"]["Types"] == ["REGIONAL"]
    (integration,) = rest_integrations(transformed)
    assert integration["type"] == "aws_proxy"
    assert "StreamFunction.Arn" in json.dumps(integration["uri"])


def test_a_wrong_transfer_mode_would_silently_buffer_and_is_caught():
    # "STREAM" is the API Gateway spelling, but SAM wants RESPONSE_STREAM: the template still
    # lints clean and deploys as a buffered API. Only the transformed integration shows it.
    broken = transform(
        TEMPLATE.replace("ResponseTransferMode: RESPONSE_STREAM", "ResponseTransferMode: STREAM")
    )
    assert lint_errors(broken) == []
    with pytest.raises(AssertionError):
        assert_rest_api_streams(broken)


def test_functions_have_explicit_timeouts_a_pinned_runtime_and_the_wrapper():
    transformed = transform(TEMPLATE)
    functions = resources(transformed, "AWS::Lambda::Function")
    assert set(functions) == {"StreamFunction", "BufferedFunction"}
    for props in (f["Properties"] for f in functions.values()):
        assert isinstance(props["Timeout"], int) and props["Timeout"] > 3  # SAM's default is 3 s
        runtime = re.fullmatch(r"python3\.(\d+)", props["Runtime"])
        assert runtime and int(runtime.group(1)) >= 12
        module, _, function = props["Handler"].rpartition(".")
        assert (ROOT / (module + ".py")).is_file() and function == "handler"
    stream = functions["StreamFunction"]["Properties"]
    assert stream["Timeout"] <= 900
    variables = stream["Environment"]["Variables"]
    assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/var/task/functions/aws_lambda/stream-wrapper"
    (url,) = resources(transformed, "AWS::Lambda::Url").values()
    assert url["Properties"]["InvokeMode"] == "RESPONSE_STREAM"
    assert url["Properties"]["TargetFunctionArn"] == {"Ref": "StreamFunction"}
    # The buffered function sits behind an HTTP API (which cannot stream).
    assert resources(transformed, "AWS::ApiGatewayV2::Api")
    permissions = resources(transformed, "AWS::Lambda::Permission").values()
    assert any(
        p["Properties"]["FunctionName"] == {"Ref": "BufferedFunction"}
        and "ServerlessHttpApi" in json.dumps(p["Properties"]["SourceArn"])
        for p in permissions
    )
    # The stream cap in the environment must end streams before Lambda's own timeout does.
    assert "MaxStreamSeconds" in json.dumps(variables["EDGERELAY_MAX_STREAM_SECONDS"])


def test_both_functions_build_with_the_makefile():
    template, _ = decode_str(TEMPLATE)
    assert template["Globals"]["Function"]["CodeUri"] == "."  # the Makefile's own folder
    for name in ("StreamFunction", "BufferedFunction"):
        assert template["Resources"][name]["Metadata"]["BuildMethod"] == "makefile"
        assert f"build-{name}" in (HERE / "Makefile").read_text()


def test_the_package_holds_only_our_code_and_runs(tmp_path):
    artifacts = tmp_path / "artifacts"
    done = subprocess.run(
        [
            "make",
            "--makefile",
            str(HERE / "Makefile"),
            "package-sources",
            f"ARTIFACTS_DIR={artifacts}",
        ],
        cwd=tmp_path,  # as sam build does: another folder, the Makefile by its path
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    files = {p.relative_to(artifacts).as_posix() for p in artifacts.rglob("*") if p.is_file()}
    assert {f.split("/")[0] for f in files} == {"edgerelay", "functions"}
    assert {f.split("/")[1] for f in files if f.startswith("edgerelay/")} == {
        "__init__.py",
        "core",
        "stores",
        "transports",
    }
    assert "edgerelay/transports/httpx_fetch.py" in files
    assert "edgerelay/core/identity/authenticate.py" in files
    assert "edgerelay/transports/signatures.py" in files  # the JWT verifier
    assert "edgerelay/core/providers/anthropic_stream.py" in files
    ours = {f for f in files if f.startswith("functions/")}
    assert "functions/aws_lambda/stream-wrapper" in ours
    assert all(f.endswith(".py") or f.endswith("stream-wrapper") for f in ours)
    assert not any(
        part in {"node_modules", ".venv", "tests", "__pycache__"}
        for f in files
        for part in f.split("/")
    )
    wrapper = artifacts / "functions" / "aws_lambda" / "stream-wrapper"
    assert wrapper.stat().st_mode & stat.S_IXUSR
    # The packaged code imports from the package alone (httpx comes from this venv here).
    env = {**os.environ, "PYTHONPATH": str(artifacts)}
    probe = (
        "import edgerelay.core as core, functions.aws_lambda.stream_loop as s,"
        " functions.aws_lambda.handler as h; print(core.__file__); print(s.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=artifacts,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert all(line.startswith(str(artifacts)) for line in done.stdout.decode().split())


def test_lambda_dependencies_are_the_tested_versions():
    def pins(path: pathlib.Path) -> dict[str, str]:
        found = {}
        for line in path.read_text().splitlines():
            name, sep, version = line.strip().partition("==")
            if sep and not line.startswith("#"):
                found[name.lower().replace("_", "-")] = version
        return found

    lambda_pins = pins(HERE / "requirements.txt")
    tested = pins(ROOT / "constraints.txt")
    assert "httpx" in lambda_pins
    assert {name: tested.get(name) for name in lambda_pins} == lambda_pins
