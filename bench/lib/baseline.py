"""`pipeline.py --baseline REF`: the same benchmark on an earlier commit's sources, in the same run.

On a shared machine two runs minutes apart are not comparable, so a change is measured against
its baseline in one invocation: the stack runs once from `REF`'s sources and once from the
working tree, one after the other, with the same phases and seeds. The baseline's sources are
exported with `git archive` (the shared library, the services and the devstack) into a temporary
folder and put first on the services' ``PYTHONPATH``, ahead of the editable installs, so each
service process (and its migrations) imports them; the benchmark process itself and the launcher
stay on the working tree.
"""

from __future__ import annotations

import subprocess
import tarfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]  # bench/lib/baseline.py -> the repository
_SOURCES = ("contracts", "shared", "services", "devstack")


@dataclass(frozen=True)
class Variant:
    """One stack of a run: a name, and the environment its services start with."""

    name: str
    env: dict[str, str]


def short_commit(ref: str) -> str:
    """`ref`'s commit, abbreviated as git does."""
    return subprocess.run(
        ["git", "-C", str(REPOSITORY), "rev-parse", "--short", f"{ref}^{{commit}}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def export_sources(ref: str, into: Path) -> tuple[str, dict[str, str]]:
    """Unpack `ref`'s sources under `into`; return its commit and the services' environment."""
    commit = short_commit(ref)
    listed = subprocess.run(
        ["git", "-C", str(REPOSITORY), "ls-tree", "--name-only", commit],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    # Commits from before the contracts package have no `contracts` folder to archive.
    sources = [source for source in _SOURCES if source in listed]
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", "--format=tar", commit, *sources],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    paths = [into / "contracts" / "src", into / "shared" / "src", into / "devstack" / "src"]
    paths += sorted((into / "services").glob("*/src"))
    return commit, {"PYTHONPATH": ":".join(str(path) for path in paths)}


def comparison(rows: list[tuple[str, str, list[object]]]) -> list[list[object]]:
    """Rows of (phase, variant, figures) sorted by phase, keeping the variants' order."""
    phases: list[str] = []
    for phase, _, _ in rows:
        if phase not in phases:
            phases.append(phase)
    return [
        [phase, variant, *figures]
        for wanted in phases
        for phase, variant, figures in rows
        if phase == wanted
    ]
