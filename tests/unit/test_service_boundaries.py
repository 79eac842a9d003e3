"""The import rule: a service imports only `shared/` (and its own package), never another
service, the command line or the simulator. Checked for every service folder, on the
imports themselves (not on text), so a new service is covered without editing this file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import imported_modules

REPO = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (REPO / "services").iterdir() if (p / "__init__.py").exists())
PROJECT_PACKAGES = {"services", "shared", "cli", "simnode", "tests", "deploy", "bench", "scripts"}


def test_every_service_folder_is_checked() -> None:
    assert {"collector", "decider", "actuator"} <= set(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_only_shared_and_itself(service: str) -> None:
    own = f"services.{service}"
    offending = []
    for path in sorted((REPO / "services" / service).rglob("*.py")):
        for name in imported_modules(path.read_text()):
            top = name.split(".")[0]
            if top not in PROJECT_PACKAGES or top == "shared":
                continue  # the standard library, third-party packages, shared/
            if name == own or name.startswith(own + "."):
                continue
            offending.append(f"{path.relative_to(REPO)} imports {name}")
    assert offending == []


def test_shared_imports_no_service() -> None:
    offending = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in sorted((REPO / "shared").rglob("*.py"))
        for name in imported_modules(path.read_text())
        if name.split(".")[0] in PROJECT_PACKAGES - {"shared"}
    ]
    assert offending == []
