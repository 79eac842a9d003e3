"""The actuator's pure core imports no asyncio, nats, clock, environment or I/O library."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import imported_modules

PURE = [
    "commands", "retry", "result", "precondition", "event_builder", "event_format", "records",
    "group_commands", "group_plan", "group_records", "ct_view", "ip_pool", "pvesh_result",
]  # fmt: skip
FORBIDDEN = {"asyncio", "nats", "os", "time", "subprocess", "socket", "paramiko", "tenacity", "shared.clock"}
ROOT = Path(__file__).resolve().parents[2] / "services" / "actuator"


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_nothing_that_does_io_or_reads_the_clock(module: str) -> None:
    imported = imported_modules((ROOT / f"{module}.py").read_text())
    bad = {name for name in imported if name in FORBIDDEN or name.split(".")[0] in FORBIDDEN}
    assert bad == set()


def test_the_actuator_imports_no_other_service_and_no_simulator() -> None:
    for path in ROOT.rglob("*.py"):
        text = path.read_text()
        assert "services.collector" not in text and "services.decider" not in text, path
        assert "simnode" not in text, path
