"""The decider's policy package is a pure core: no I/O, no broker, no environment, no clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import imported_modules

DECIDER_DIR = Path(__file__).resolve().parents[2] / "services" / "decider"
FORBIDDEN_MODULES = {
    "asyncio", "nats", "os", "time", "socket", "subprocess", "threading", "random",
    "shared.clock", "shared.nats_settings", "shared.provisioning", "shared.embedded_broker",
    "shared.service_config", "logging",
}  # fmt: skip
FORBIDDEN_CALLS = {"now", "utcnow", "today", "monotonic", "getenv"}
# The vertical core and its sibling for horizontal groups.
MODULES = sorted([*(DECIDER_DIR / "policy").glob("*.py"), *(DECIDER_DIR / "group_policy").glob("*.py")])


def _imports(tree: ast.AST) -> set[str]:
    return imported_modules(ast.unparse(tree))


def test_the_policy_package_has_modules() -> None:
    assert len(MODULES) > 5


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_a_policy_module_imports_nothing_that_does_io_or_reads_a_clock(path: Path) -> None:
    tree = ast.parse(path.read_text())
    bad = {
        name
        for name in _imports(tree)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_MODULES)
    }
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_a_policy_module_never_asks_for_the_current_time(path: Path) -> None:
    tree = ast.parse(path.read_text())
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert not calls & FORBIDDEN_CALLS, f"{path.name} calls {sorted(calls & FORBIDDEN_CALLS)}"
