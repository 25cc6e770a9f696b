"""Schemathesis over every service's OpenAPI, on the system as `make run` starts it.

The services run as processes on the embedded broker (the real Kafka protocol) and SQLite, as
`make run` starts them. For each service the Schemathesis CLI reads the service's own
``/openapi.json`` and sends a bounded, derandomized set of cases per operation (documented
examples, boundary values, generated data, then chains of calls), with an all-scope key, and
checks every answer: no 5xx, a documented status code, the documented content type and a body
matching the documented schema, and no 2xx without a key. The settings are in
``schemathesis.toml`` at the repository root, so the same command works by hand against
`make run`; a failing run shows each failing case with the curl line that reproduces it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm_devstack.launcher import Stack, start_stack
from crm_devstack.services import SERVICES, repo_root
from crm_shared import API_KEY_HEADER

pytestmark = [pytest.mark.kafka]

ROOT = repo_root()
# One service's run takes 5-60 s on a loaded 2-core machine; the bound is for a hung run.
RUN_TIMEOUT_SECONDS = 600
_PROBLEM_JSON = "application/problem+json"
# Where the Schemathesis report's failing cases and errors start, and where its summary ends.
_FIRST_REPORT_SECTION = re.compile(r"^=+ (ERRORS|FAILURES) =+$", re.MULTILINE)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(data_dir=tmp_path_factory.mktemp("fuzzed-stack"), free_ports=True) as running:
        yield running


@pytest.mark.timeout(RUN_TIMEOUT_SECONDS + 120)
@pytest.mark.parametrize("service", [spec.name for spec in SERVICES])
def test_schemathesis_finds_no_server_error_or_undocumented_answer(
    stack: Stack, service: str, tmp_path: Path
) -> None:
    report_path = tmp_path / "schemathesis.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{stack.urls[service]}/openapi.json",
        "--header",
        f"{API_KEY_HEADER}: {stack.api_key}",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report_path),
    ]
    started = time.monotonic()
    # The working directory holds schemathesis.toml and the hooks module it names.
    run = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS
    )
    seconds = time.monotonic() - started
    assert report_path.exists(), f"Schemathesis did not run:\n{run.stdout}\n{run.stderr}"
    report: dict[str, Any] = json.loads(report_path.read_text())
    operations, cases = report["operations"], report["test_cases"]
    print(
        f"\n{service}: {cases['generated']} cases over {operations['tested']} operations "
        f"in {seconds:.0f} s"
    )

    assert run.returncode == 0, _failing_cases(run.stdout, run.stderr)
    # Every operation was fuzzed: none skipped, filtered out or stopped by an error.
    assert operations["selected"] == operations["total"] == operations["tested"], operations
    assert operations["errored"] == operations["skipped"] == 0, operations
    assert cases["generated"] >= operations["total"], cases


@pytest.mark.parametrize("service", [spec.name for spec in SERVICES])
def test_every_operation_with_a_security_requirement_refuses_a_missing_or_wrong_key(
    stack: Stack, service: str
) -> None:
    with httpx.Client(base_url=stack.urls[service], timeout=30, trust_env=False) as client:
        document = client.get("/openapi.json").json()
        guarded = [
            (method.upper(), path)
            for path, operations in document["paths"].items()
            for method, operation in operations.items()
            if operation.get("security")
        ]
        assert guarded, f"{service} declares no operation that needs a key"
        for method, path in guarded:
            # Path parameters need only match their route: the key is checked first.
            url = re.sub(r"\{[^}]+\}", "x", path)
            for headers in ({}, {API_KEY_HEADER: "crm_not-a-key"}):
                response = client.request(method, url, headers=headers)
                what = f"{method} {path} with {'a wrong' if headers else 'no'} key"
                assert response.status_code == 401, f"{what}: {response.status_code}"
                assert response.headers["content-type"] == _PROBLEM_JSON, what
                assert response.json()["status"] == 401, what


def _failing_cases(stdout: str, stderr: str) -> str:
    """The part of the Schemathesis output that names each failing case and how to repeat it."""
    found = _FIRST_REPORT_SECTION.search(stdout)
    shown = stdout[found.start() :] if found else stdout
    return (
        "Schemathesis found failures (each with a curl line; put the key back for "
        f"[Filtered] and the service's address for this run's):\n{shown}\n{stderr}"
    )
