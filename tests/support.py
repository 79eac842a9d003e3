"""Builders for wire messages in tests: readable defaults, override what matters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.models import ContainerReading, HostTotals, NodeSample

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def reading(vmid: int = 101, **overrides: Any) -> ContainerReading:
    values: dict[str, Any] = {
        "vmid": vmid,
        "hostname": f"ct{vmid}",
        "status": "running",
        "cores": 2,
        "memory_mb": 1024,
        "cpu_pct": 50.0,
        "memory_pct": 50.0,
        "running_for_s": 3600.0,
    }
    values.update(overrides)
    return ContainerReading(**values)


def sample(*containers: ContainerReading, **overrides: Any) -> NodeSample:
    host = overrides.pop("host", None) or HostTotals(
        cores=16,
        memory_mb=32768,
        allocated_cores_running=sum(c.cores for c in containers if c.status == "running"),
        allocated_memory_mb_running=sum(c.memory_mb for c in containers if c.status == "running"),
        allocated_cores_all=sum(c.cores for c in containers),
        allocated_memory_mb_all=sum(c.memory_mb for c in containers),
    )
    values: dict[str, Any] = {
        "node": "pve1",
        "seq": 1,
        "boot_id": "boot-a",
        "taken_at": T0,
        "interval_s": 10.0,
        "source": "sim",
        "host": host,
        "containers": containers,
    }
    values.update(overrides)
    return NodeSample(**values)


def imported_modules(source: str) -> set[str]:
    """Every module a Python source imports (for the pure-core import rule tests)."""
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def metric(name: str, **labels: str) -> float:
    """A series of this process's Prometheus registry (0 before it first moves): services
    started in the test's process count there, so a test can see its event counted."""
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0
