"""One `pct` process per applied intent: the precondition and the read-back come from the
container's config file; `read_config: pct` (the fallback) gives the same outcomes with
three pct calls. Processes are counted through the simulated pct's call log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from actuator_harness import EventReader, intent, publish_intent, running_actuator, sim_node

from shared.models import ScaleEvent, ScaleIntent

pytestmark = pytest.mark.integration


def summary(events: list[ScaleEvent]) -> list[tuple[Any, ...]]:
    """What an operator sees of each event (ids and timings aside)."""
    return sorted((e.vmid, e.outcome, e.detail, e.message, e.before, e.after, e.attempts) for e in events)


async def apply_all(
    nc: Any, root: Path, items: list[ScaleIntent], already: int = 0, **settings: Any
) -> tuple[Any, ...]:
    """Apply `items` on a fresh node; `already`: events of earlier runs on this broker."""
    sim = sim_node(root, (101, 2, 1024), (102, 2, 1024), (103, 4, 2048))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim, **settings):
        for item in items:
            await publish_intent(js, item)
        events = (await reader.take(already + len(items)))[already:]
    return summary(events), sim.pct_calls()


def intents(run: str = "a") -> list[ScaleIntent]:
    """Distinct ids per run (the intents stream drops a repeated id)."""
    return [
        intent(101, expected=(2, 1024), target=(3, 1024), source_id=f"{run}:1"),  # applied
        intent(102, expected=(2, 1024), target=(2, 2048), source_id=f"{run}:2"),  # applied
        intent(103, expected=(2, 2048), target=(3, 2048), source_id=f"{run}:3"),  # stale: it has 4 cores
        intent(103, expected=(3, 1024), target=(4, 2048), source_id=f"{run}:4"),  # already has it
    ]


async def test_an_applied_intent_runs_pct_once_and_a_skipped_one_never(nc: Any, tmp_path: Path) -> None:
    events, calls = await apply_all(nc, tmp_path / "node", intents())
    assert [e[1:3] for e in events] == [
        ("applied", "resized"), ("applied", "resized"), ("skipped", "already-applied"), ("skipped", "stale"),
    ]  # fmt: skip
    assert sorted(calls) == [["set", "101", "-cores", "3", "-memory", "1024"],
                             ["set", "102", "-cores", "2", "-memory", "2048"]]  # fmt: skip


async def test_the_pct_config_fallback_gives_the_same_events_with_three_calls(
    nc: Any, tmp_path: Path
) -> None:
    by_file, file_calls = await apply_all(nc, tmp_path / "a", intents("a"))
    by_pct, pct_calls = await apply_all(nc, tmp_path / "b", intents("b"), already=4, read_config="pct")
    assert by_pct == by_file
    assert len(file_calls) == 2
    # 2 x (config, set, config) for the applied ones, one config for each skipped one
    assert sorted(c[0] for c in pct_calls) == ["config"] * 6 + ["set"] * 2


async def test_only_the_main_section_of_the_file_counts(nc: Any, tmp_path: Path) -> None:
    """A pending change and a snapshot below the main section do not move the precondition."""
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    conf = sim.conf_path(101)
    conf.write_text(
        conf.read_text() + "\n[pve:pending]\ncores: 8\n\n[before-upgrade]\ncores: 1\nmemory: 512\n"
    )
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim):
        await publish_intent(js, intent(101, expected=(2, 1024), target=(3, 1024)))
        [event] = await reader.take(1)
    assert (event.outcome, event.detail) == ("applied", "resized")
    assert event.before is not None and (event.before.cores, event.before.memory_mb) == (2, 1024)


async def test_a_container_without_a_config_file_fails_as_pct_reports_it(nc: Any, tmp_path: Path) -> None:
    by_file, file_calls = await apply_all(nc, tmp_path / "a", [intent(555, source_id="a")])
    by_pct, _ = await apply_all(
        nc, tmp_path / "b", [intent(555, source_id="b")], already=1, read_config="pct"
    )
    assert by_file == by_pct
    [(_, outcome, detail, message, *_)] = by_file
    assert (outcome, detail) == ("failed", "unknown-container")
    assert message == "Configuration file 'nodes/pve1/lxc/555.conf' does not exist"
    assert file_calls == []
