"""The actuator with the API executor against the Proxmox API double: the same outcomes
as with local pct (applied, stale, locked, failed, retries), plus what only the API has
(privileges, TLS pinning, 5xx from pveproxy)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import EventReader, intent, publish_intent, running_actuator, set_calls, sim_node
from pve_api import PveApi, serve_api

from services.actuator.commands import ReadConfig, argv
from simnode import faults

pytestmark = pytest.mark.integration
CONFIG_PUT = ("PUT", "/api2/json/nodes/pve1/lxc/101/config")


@pytest.fixture
def pve(tmp_path: Path) -> Iterator[PveApi]:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    with serve_api(sim, tmp_path / "tls") as api:
        yield api


def puts(pve: PveApi) -> list[int]:
    return [status for method, path, status in pve.calls() if (method, path) == CONFIG_PUT]


async def test_an_intent_is_applied_through_the_api_and_pct_is_never_run(nc: Any, pve: PveApi) -> None:
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, pve.sim, executor=pve.executor()):
        await publish_intent(js, intent(target=(3, 2048)))
        [event] = await reader.take(1)
    assert (event.outcome, event.detail, event.attempts) == ("applied", "resized", 1)
    assert (event.before.cores, event.after.cores) == (2, 3)  # type: ignore[union-attr]
    assert (event.before.memory_mb, event.after.memory_mb) == (1024, 2048)  # type: ignore[union-attr]
    assert pve.sim.read_conf(101)["memory"] == "2048"
    assert pve.sim.read_cgroup(101, "memory.max") == f"{2048 * 1024 * 1024}\n"  # hot-applied
    assert puts(pve) == [200] and pve.sim.pct_calls() == []


async def test_a_stale_intent_is_skipped_without_a_change(nc: Any, pve: PveApi) -> None:
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, pve.sim, executor=pve.executor()):
        await publish_intent(js, intent(expected=(1, 512), target=(3, 1024)))
        [event] = await reader.take(1)
    assert (event.outcome, event.detail) == ("skipped", "stale")
    assert puts(pve) == [] and pve.sim.read_conf(101)["cores"] == "2"


async def test_a_container_locked_twice_is_retried_and_applied(nc: Any, pve: PveApi) -> None:
    faults.inject(pve.sim.root, 101, locked_times=2)
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, pve.sim, executor=pve.executor(), max_attempts=4):
        await publish_intent(js, intent())
        [event] = await reader.take(1)
    assert (event.outcome, event.attempts) == ("applied", 3)
    assert puts(pve) == [500, 500, 200]
    assert pve.sim.read_conf(101)["cores"] == "3"


async def test_a_container_locked_past_the_limit_fails_as_locked_with_proxmoxs_message(
    nc: Any, pve: PveApi
) -> None:
    faults.inject(pve.sim.root, 101, locked_times=10)
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, pve.sim, executor=pve.executor(), max_attempts=3):
        await publish_intent(js, intent())
        [event] = await reader.take(1)
    assert (event.outcome, event.detail, event.attempts) == ("failed", "locked", 3)
    assert "500 CT is locked (backup)" in event.message
    assert pve.sim.read_conf(101)["cores"] == "2"


async def test_a_missing_container_fails_after_one_attempt(nc: Any, pve: PveApi) -> None:
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, pve.sim, executor=pve.executor()):
        await publish_intent(js, intent(vmid=555))
        [event] = await reader.take(1)
    assert (event.outcome, event.detail, event.attempts) == ("failed", "unknown-container", 1)
    assert "Configuration file 'nodes/pve1/lxc/555.conf' does not exist" in event.message


async def test_a_hung_change_times_out_and_the_retry_applies(nc: Any, pve: PveApi) -> None:
    faults.inject(pve.sim.root, 101, hang_seconds=1.2, hang_times=1)
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, pve.sim, executor=pve.executor(), command_timeout_s=0.8, max_attempts=3):
        await publish_intent(js, intent())
        [event] = await reader.take(1)
    assert (event.outcome, event.attempts) == ("applied", 2)
    assert pve.sim.read_conf(101)["cores"] == "3"


async def test_an_unavailable_api_daemon_is_retried(nc: Any, pve: PveApi) -> None:
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, pve.sim, executor=pve.executor(), max_attempts=4):
        pve.double.fail_next(2, 503, "Service Unavailable")  # the precondition read and the first PUT
        await publish_intent(js, intent())
        [event] = await reader.take(1)
    assert event.outcome == "applied"
    assert pve.sim.read_conf(101)["cores"] == "3"


async def test_a_token_without_the_memory_privilege_fails_permanently_naming_it(nc: Any, pve: PveApi) -> None:
    secret = pve.add_token("cpuonly@pve!actuator", ("VM.Audit", "VM.Config.CPU"))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    executor = pve.executor(token_id="cpuonly@pve!actuator", secret=secret)
    async with running_actuator(nc, pve.sim, executor=executor, max_attempts=4):
        await publish_intent(js, intent(target=(3, 2048)))
        [event] = await reader.take(1)
    assert (event.outcome, event.detail, event.attempts) == ("failed", "permission-denied", 1)
    assert "403 Permission check failed (/vms/101, VM.Config.Memory)" in event.message
    assert puts(pve) == [403] and pve.sim.read_conf(101)["cores"] == "2"


async def test_a_wrong_tls_fingerprint_is_refused_before_the_token_is_sent(pve: PveApi) -> None:
    executor = pve.executor(ca_file=None, fingerprint="AB" * 32)
    result = await executor.run(argv(ReadConfig(101), str(pve.sim.pct_path)), 5)
    assert result.setup_code == "tls-refused" and result.exit_code is None
    assert "not the pinned AB:AB" in (result.setup_error or "")
    assert pve.calls() == []  # no request ever reached the server
    pinned = pve.executor(ca_file=None, fingerprint=pve.tls.fingerprint)
    assert (await pinned.run(argv(ReadConfig(101), str(pve.sim.pct_path)), 5)).ok


async def test_a_server_outside_the_ca_is_refused(pve: PveApi, tmp_path: Path) -> None:
    from simnode.tls import make_tls_files

    other = make_tls_files(tmp_path / "other-ca")
    result = await pve.executor(ca_file=other.ca_path).run(argv(ReadConfig(101), str(pve.sim.pct_path)), 5)
    assert result.setup_code == "tls-refused" and "not trusted" in (result.setup_error or "")
    assert pve.calls() == []


async def test_a_wrong_token_secret_fails_with_proxmoxs_401(pve: PveApi) -> None:
    started = time.monotonic()
    result = await pve.executor(secret="not-the-secret").run(argv(ReadConfig(101), str(pve.sim.pct_path)), 5)
    assert (result.http_status, result.stderr) == (401, "401 Authentication failed!")
    assert time.monotonic() - started >= 0.05  # pveproxy delays failed logins
    assert set_calls(pve.sim) == []
