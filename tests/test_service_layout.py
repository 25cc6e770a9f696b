"""Every service has the shape the README states, and its layers only touch what they may.

The README's "Inside a service" section is the one statement of the layout: this test reads
the shape and its exceptions from there, lists each package's top-level modules and packages
(``services/*/src/<package>/``), and checks by parsing the sources (nothing is imported) that
``domain/`` stays pure, ``workflows/`` never reach into ``api/``, and every consumed batch is
handled by a module under ``events/``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = sorted(path for path in REPO.glob("services/*/src/*") if (path / "__init__.py").exists())
SERVICES = [package for package in PACKAGES if (package / "events").is_dir()]

# domain/ imports none of these (their own submodules included).
FRAMEWORKS = ("fastapi", "starlette", "sqlalchemy", "aiokafka")
# Ways to read the wall clock; a duration timer (time.monotonic, injected as a render budget's
# clock in notification's templates) measures no date and is allowed.
CLOCK_ATTRIBUTES = {
    "datetime": {"now", "utcnow", "today"},
    "date": {"today"},
    "time": {"time", "time_ns", "localtime", "gmtime", "ctime"},
}
CLOCK_FUNCTIONS = {"utc_now"}


def readme_layout() -> tuple[set[str], dict[str, tuple[str, set[str]]]]:
    """The shape every package has, and each exception: (``+`` or ``=``, its names)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Inside a service\n", 1)[1].split("\n## ", 1)[0]
    shape_block, exceptions_block = re.findall(r"```\n(.*?)```", section, re.S)[:2]
    shape = set(re.findall(r"^(\S+)\s{2,}", shape_block, re.M))
    exceptions = {
        package: (mark, set(names.split()))
        for package, mark, names in re.findall(r"^(\w+)\s+([+=]) (.+)$", exceptions_block, re.M)
    }
    return shape, exceptions


def top_level(package: Path) -> set[str]:
    """The package's modules (``name.py``) and folders (``name/``), private ones left out."""
    names = set()
    for entry in package.iterdir():
        if entry.name.startswith(("_", ".")):
            continue  # __init__.py, __pycache__
        if entry.is_dir():
            names.add(f"{entry.name}/")
        elif entry.suffix == ".py":
            names.add(entry.name)
    return names


def modules_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def imported_modules(tree: ast.AST, module: str) -> Iterator[str]:
    """Every module a source imports from, relative imports resolved against ``module``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                yield ".".join([*base, node.module] if node.module else base)
            else:
                yield node.module or ""


def module_name(path: Path) -> str:
    package_root = path.relative_to(REPO).parts.index("src") + 1
    parts = path.relative_to(REPO).with_suffix("").parts[package_root:]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def clock_reads(tree: ast.AST) -> list[str]:
    """Where a source reads the wall clock (a call, or a reference passed on as a clock)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name | ast.Attribute):
            owner = node.value.id if isinstance(node.value, ast.Name) else node.value.attr
            if node.attr in CLOCK_ATTRIBUTES.get(owner, ()):
                found.append(f"{owner}.{node.attr} (line {node.lineno})")
        elif isinstance(node, ast.Name) and node.id in CLOCK_FUNCTIONS:
            found.append(f"{node.id} (line {node.lineno})")
        elif isinstance(node, ast.ImportFrom) and node.module in CLOCK_ATTRIBUTES:
            for alias in node.names:
                if alias.name in CLOCK_ATTRIBUTES[node.module]:
                    found.append(f"from {node.module} import {alias.name} (line {node.lineno})")
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name in CLOCK_FUNCTIONS:
                    found.append(f"import of {alias.name} (line {node.lineno})")
    return found


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_the_services_and_the_console_are_all_found() -> None:
    names = {package.name for package in PACKAGES}
    assert {"profile_service", "scoring_service", "lifecycle_service"} <= names
    assert {"notification_service", "crm_console"} <= names
    assert len(SERVICES) == len(PACKAGES) - 1  # all but the console consume events


def test_the_readme_exceptions_name_real_packages() -> None:
    shape, exceptions = readme_layout()
    assert {"api/", "db/", "domain/", "events/", "workflows/", "app.py"} <= shape
    assert set(exceptions) <= {package.name for package in PACKAGES}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda package: package.name)
def test_package_has_the_shape_the_readme_states(package: Path) -> None:
    shape, exceptions = readme_layout()
    mark, names = exceptions.get(package.name, ("+", set()))
    expected = shape | names if mark == "+" else names
    assert top_level(package) == expected


@pytest.mark.parametrize("package", PACKAGES, ids=lambda package: package.name)
def test_domain_imports_no_framework_and_reads_no_clock(package: Path) -> None:
    offences = []
    for path in modules_under(package / "domain"):
        tree = parsed(path)
        for imported in imported_modules(tree, module_name(path)):
            if imported.split(".")[0] in FRAMEWORKS:
                offences.append(f"{path.relative_to(REPO)} imports {imported}")
        offences += [f"{path.relative_to(REPO)}: {read}" for read in clock_reads(tree)]
    assert offences == []


@pytest.mark.parametrize("package", SERVICES, ids=lambda package: package.name)
def test_workflows_import_nothing_from_api(package: Path) -> None:
    api = f"{package.name}.api"
    offences = [
        f"{path.relative_to(REPO)} imports {imported}"
        for path in modules_under(package / "workflows")
        for imported in imported_modules(parsed(path), module_name(path))
        if imported == api or imported.startswith(f"{api}.")
    ]
    assert offences == []


def subscription_calls(tree: ast.AST) -> Iterator[ast.Call]:
    """``Subscription(...)`` and ``Subscription.batched(...)`` calls."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Attribute):
                function = function.value
            if isinstance(function, ast.Name) and function.id == "Subscription":
                yield node


def imported_names(tree: ast.Module) -> dict[str, str]:
    """Each name a module imports with ``from x import name``, and the module it comes from."""
    return {
        alias.asname or alias.name: node.module or ""
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


@pytest.mark.parametrize("package", SERVICES, ids=lambda package: package.name)
def test_every_consumed_batch_is_handled_under_events(package: Path) -> None:
    tree = parsed(package / "app.py")
    origins = imported_names(tree)
    calls = list(subscription_calls(tree))
    assert calls, "the service subscribes to nothing"
    for call in calls:
        own = {
            node.id: origins[node.id]
            for node in ast.walk(call)
            if isinstance(node, ast.Name)
            and origins.get(node.id, "").startswith(f"{package.name}.")
        }
        # The handler and the topics it consumes are both the service's own, from events/.
        assert own, f"a subscription in {package.name}/app.py uses nothing of the service"
        elsewhere = {
            name: origin
            for name, origin in own.items()
            if not origin.startswith(f"{package.name}.events.")
        }
        assert elsewhere == {}


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import datetime\nstamp = datetime.now()",
        "import datetime\nstamp = datetime.datetime.utcnow()",
        "from datetime import date\nday = date.today()",
        "import time\nseconds = time.time()",
        "from time import time",
        "from crm_shared import utc_now",
    ],
)
def test_a_clock_read_is_noticed(source: str) -> None:
    assert clock_reads(ast.parse(source)) != []


def test_a_duration_timer_and_a_given_now_are_not_clock_reads() -> None:
    source = "import time\ndef render(now, clock=time.monotonic):\n    return now.date()"
    assert clock_reads(ast.parse(source)) == []
