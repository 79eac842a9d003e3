"""Exactly-once through the API: the actuator process (ACTUATOR.executor: api) killed mid-intent."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import (
    EventReader,
    eventually,
    intent,
    intent_settled,
    publish_intent,
    setup_node,
    sim_node,
)
from pve_api import PveApi, serve_api

from shared import failpoints
from shared.config import API_TOKEN_ENV, load_config
from shared.embedded_broker import EmbeddedBroker

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parents[2]


def config_text(pve: PveApi) -> str:
    return f"""\
DEFAULT:
  proxmox_api:
    host: 127.0.0.1
    port: {pve.double.port}
    user: autoscale@pve
    token_name: actuator
    ca_file: {pve.tls.ca_path}
ACTUATOR:
  executor: api
  command_timeout_s: 2
  max_attempts: 3
  backoff_initial_s: 0.01
  backoff_max_s: 0.05
"""


def actuator_process(broker: EmbeddedBroker, pve: PveApi, config: Path, crash_after: str | None) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "AUTOSCALE_", "LXC_AUTOSCALE"))}
    env[API_TOKEN_ENV] = pve.secret
    if crash_after:
        env[failpoints.ENVIRONMENT_VARIABLE] = f"actuator.after-{crash_after}=kill"
    # No --host-cores: the host's size is read through GET /nodes/pve1/status.
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "actuator", "--config", str(config), "--nats-url", broker.url,
         "--node", "pve1", "--log-format", "json", "--log-level", "DEBUG"],
        cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.fixture
def pve(tmp_path: Path) -> Iterator[PveApi]:
    with serve_api(sim_node(tmp_path / "node", (101, 2, 1024)), tmp_path / "tls") as api:
        yield api


@pytest.mark.parametrize("step", ["command", "publish"])
async def test_an_api_actuator_killed_mid_intent_makes_one_change_and_one_event(
    nc: Any, broker: EmbeddedBroker, pve: PveApi, tmp_path: Path, processes: list[Any], step: str
) -> None:
    config = tmp_path / "autoscale.yaml"
    config.write_text(config_text(pve))
    js = nc.jetstream()
    await setup_node(js, load_config(config, env={}).actuator)  # as `lxc-autoscale setup` does
    await publish_intent(js, intent(target=(4, 2048)))

    first = actuator_process(broker, pve, config, crash_after=step)
    processes.append(first)
    assert await asyncio.to_thread(first.wait, 30) == -9
    first_log = first.stderr.read().decode()
    assert len(pve.calls("PUT")) == 1

    second = actuator_process(broker, pve, config, crash_after=None)
    processes.append(second)
    # The restarted actuator first waits out the killed one's node lease (docs/actuator.md).
    await eventually(lambda: intent_settled(js), timeout_s=40)
    reader = await EventReader.open(js)  # ephemeral: opened only now, so it is not reaped idle
    [event] = await reader.take(1, timeout_s=10)
    assert (event.outcome, event.detail) == ("applied", "resized")
    assert (event.before.cores, event.after.cores) == (2, 4)  # type: ignore[union-attr]
    assert await reader.nothing_more(wait_s=0.5) == []
    assert len(pve.calls("PUT")) == 1 and pve.sim.pct_calls() == []
    assert pve.sim.read_conf(101)["memory"] == "2048"
    second.terminate()
    _, second_log = await asyncio.to_thread(second.communicate, timeout=10)
    assert "api_executor" in first_log  # it did log where it connects…
    assert pve.secret not in first_log + second_log.decode()  # …and never the token
