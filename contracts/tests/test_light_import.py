"""The contracts are a package a shop's backend can install alone: importing them loads pydantic,
never the services' framework (FastAPI), database (SQLAlchemy), Kafka client or metrics."""

from __future__ import annotations

import json
import subprocess
import sys

FRAMEWORK_MODULES = ("fastapi", "starlette", "sqlalchemy", "aiokafka", "prometheus_client")

_LOADED = """
import importlib, json, pkgutil, sys
import crm_contracts
for module in pkgutil.walk_packages(crm_contracts.__path__, "crm_contracts."):
    importlib.import_module(module.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))  # top-level packages
"""


def test_importing_the_contracts_loads_no_framework_module() -> None:
    # A fresh interpreter: this test process has imported the services long ago.
    result = subprocess.run(
        [sys.executable, "-c", _LOADED], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = set(json.loads(result.stdout))
    assert "crm_contracts" in loaded
    assert not loaded & {*FRAMEWORK_MODULES, "crm_shared"}, sorted(loaded & set(FRAMEWORK_MODULES))


def test_the_distribution_depends_on_pydantic_and_ids_only() -> None:
    from importlib.metadata import requires

    names = {
        req.split(";")[0].split(">")[0].split("=")[0].strip()
        for req in requires("crm-contracts") or []
    }
    assert names == {"pydantic", "uuid-utils"}
