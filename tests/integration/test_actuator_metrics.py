"""The actuator's per-container family, opt-in (`--metrics-per-container`): once turned
on, each intent that ends is counted under its container's vmid, by outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from actuator_harness import EventReader, intent, publish_intent, running_actuator, sim_node
from support import metric

from services.actuator import metrics

pytestmark = pytest.mark.integration


async def test_an_intent_is_counted_under_its_container_once_the_operator_opts_in(
    nc: Any, tmp_path: Path
) -> None:
    metrics.enable_per_container()
    series = {"node": "pve1", "vmid": "101"}
    applied = metric("autoscale_actuator_container_intents_total", **series, outcome="applied")
    skipped = metric("autoscale_actuator_container_intents_total", **series, outcome="skipped")
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim):
        await publish_intent(js, intent(target=(3, 1024)))
        # still expects 2 cores, found 3: skipped as stale
        await publish_intent(js, intent(target=(4, 1024), source_id="pve1:boot-a:2"))
        events = await reader.take(2)
    assert [e.outcome for e in events] == ["applied", "skipped"]
    assert metric("autoscale_actuator_container_intents_total", **series, outcome="applied") == applied + 1
    assert metric("autoscale_actuator_container_intents_total", **series, outcome="skipped") == skipped + 1
    other = {"node": "pve1", "vmid": "102", "outcome": "applied"}
    assert metric("autoscale_actuator_container_intents_total", **other) == 0.0
