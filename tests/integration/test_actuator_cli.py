"""`lxc-autoscale events` and `lxc-autoscale rollback` against a real broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import EventReader, intent, publish_intent, running_actuator, sim_node

from shared.embedded_broker import EmbeddedBroker

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parents[2]


async def cli(broker: EmbeddedBroker, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n")
    command = [sys.executable, "-m", "cli.main", args[0], "--config", str(config), "--nats-url", broker.url,
               "--log-format", "json", *args[1:]]  # fmt: skip
    return await asyncio.to_thread(
        subprocess.run, command, cwd=PROJECT, capture_output=True, text=True, timeout=60
    )


async def test_events_prints_one_readable_line_per_event_and_exits(
    nc: Any, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024), (102, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    first = intent(101)
    async with running_actuator(nc, sim):
        await publish_intent(js, first)
        await publish_intent(js, intent(102, expected=(9, 1024)))
        await reader.take(2)
    everything = await cli(broker, tmp_path, "events")
    only_101 = await cli(broker, tmp_path, "events", "--vmid", "101", "--json")
    recent = await cli(broker, tmp_path, "events", "--since", "1h")
    future = await cli(broker, tmp_path, "events", "--since", "2999-01-01T00:00")
    assert len(recent.stdout.splitlines()) == 2, recent.stderr
    assert (future.returncode, future.stdout) == (2, "") and "future" in future.stderr
    assert everything.returncode == 0, everything.stderr
    lines = sorted(everything.stdout.splitlines(), key=lambda line: "pve1/102" in line)
    assert len(lines) == 2
    assert lines[0].endswith(
        "pve1/101 applied scale-up cores 2→3 memory 1024→1024 MB (cpu 95% > 80%) "
        f"[intent {first.intent_id[:8]}…]"
    )
    assert "pve1/102 skipped stale: expected cores 9" in lines[1]
    [record] = [json.loads(line) for line in only_101.stdout.splitlines()]
    assert (record["vmid"], record["outcome"], record["after"]["cores"]) == (101, "applied", 3)


async def test_events_with_nothing_stored_prints_nothing_and_exits(
    broker: EmbeddedBroker, nc: Any, tmp_path: Path
) -> None:
    result = await cli(broker, tmp_path, "events", "--node", "pve1", "--since", "1h")
    assert (result.returncode, result.stdout) == (0, "")


async def test_events_refuses_a_bad_vmid_with_a_clear_message(broker: EmbeddedBroker, tmp_path: Path) -> None:
    result = await cli(broker, tmp_path, "events", "--vmid", "101;reboot")
    assert result.returncode == 2 and "--vmid" in result.stderr


async def test_rollback_restores_the_original_size_through_the_actuator(
    nc: Any, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024), (102, 1, 512))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim):
        await publish_intent(js, intent(101, expected=(2, 1024), target=(3, 2048), source_id="a"))
        await publish_intent(js, intent(102, expected=(1, 512), target=(2, 768), source_id="a"))
        await reader.take(2)
        await publish_intent(js, intent(101, expected=(3, 2048), target=(4, 4096), source_id="b"))
        await reader.take(1)
        result = await cli(broker, tmp_path, "rollback", "--all", "--node", "pve1")
        events = await reader.take(2)
    assert result.returncode == 0, result.stderr
    assert "pve1/101: requested cores 4→2 memory 4096→1024 MB" in result.stdout
    assert "pve1/102: requested cores 2→1 memory 768→512 MB" in result.stdout
    assert {(e.vmid, e.outcome, e.origin) for e in events} == {
        (101, "applied", "rollback"),
        (102, "applied", "rollback"),
    }
    assert (sim.read_conf(101)["cores"], sim.read_conf(101)["memory"]) == ("2", "1024")
    assert (sim.read_conf(102)["cores"], sim.read_conf(102)["memory"]) == ("1", "512")


async def test_rollback_of_a_container_never_changed_says_so(
    nc: Any, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    result = await cli(broker, tmp_path, "rollback", "--vmid", "101", "--node", "pve1")
    assert result.returncode == 1
    assert "no saved original size for pve1/101" in result.stderr
