"""The SSH executor against a real OpenSSH server running the simulated pct."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from actuator_harness import EventReader, intent, publish_intent, running_actuator, set_calls, sim_node
from sshd import SshServer, sshd_server

from services.actuator.commands import ReadConfig, argv, parse_config
from services.actuator.executors.ssh import SshExecutor, SshTarget

pytestmark = pytest.mark.integration
__all__ = ["sshd_server"]  # the fixture, imported so pytest finds it


def target(server: SshServer, **overrides: Any) -> SshTarget:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "user": server.user,
        "key_path": server.client_key,
        "known_hosts_path": server.known_hosts,
    }
    values.update(overrides)
    return SshTarget(**values)


async def test_an_intent_is_applied_over_ssh_with_the_simulated_pct(
    nc: Any, tmp_path: Path, sshd_server: SshServer
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    executor = SshExecutor(target(sshd_server))
    async with running_actuator(nc, sim, executor=executor):
        await publish_intent(js, intent(target=(4, 4096)))
        [event] = await reader.take(1)
    assert (event.outcome, event.attempts) == ("applied", 1)
    assert sim.read_conf(101)["cores"] == "4" and sim.read_conf(101)["memory"] == "4096"
    assert set_calls(sim) == [["set", "101", "-cores", "4", "-memory", "4096"]]
    assert executor.connections_opened == 1  # config, set and read-back shared one connection


async def test_a_changed_host_key_is_refused_with_a_clear_error(
    tmp_path: Path, sshd_server: SshServer
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    sshd_server.restart(new_host_key=True)
    executor = SshExecutor(target(sshd_server))
    result = await executor.run(argv(ReadConfig(101), str(sim.pct_path)), 5)
    await executor.close()
    assert result.exit_code is None and result.setup_code == "host-key-mismatch"
    assert "does not match known_hosts" in (result.setup_error or "")
    assert sim.pct_calls() == []


async def test_auto_without_known_hosts_keeps_the_first_key_and_refuses_a_changed_one(
    tmp_path: Path, sshd_server: SshServer
) -> None:
    executor = SshExecutor(target(sshd_server, host_key_policy="auto", known_hosts_path=None))
    first = await executor.run(("true",), 5)
    sshd_server.restart(new_host_key=True)  # same address, another key: a man in the middle
    second = await executor.run(("true",), 5)
    await executor.close()
    assert first.ok
    assert second.setup_code == "host-key-mismatch" and executor.connections_opened == 1


async def test_an_unknown_host_is_refused_by_the_default_policy(
    tmp_path: Path, sshd_server: SshServer
) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    executor = SshExecutor(target(sshd_server, known_hosts_path=empty))
    result = await executor.run(("true",), 5)
    await executor.close()
    assert result.setup_code == "host-key-unknown"
    assert "not in known_hosts" in (result.setup_error or "")


async def test_a_dead_pooled_connection_is_replaced_after_the_server_restarts(
    tmp_path: Path, sshd_server: SshServer
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    executor = SshExecutor(target(sshd_server))
    command = argv(ReadConfig(101), str(sim.pct_path))
    first = await executor.run(command, 5)
    sshd_server.restart()
    second = await executor.run(command, 5)
    await executor.close()
    assert first.ok and second.ok
    assert parse_config(second.stdout).cores == 2
    assert executor.connections_opened == 2


async def test_a_remote_command_past_its_timeout_is_killed(tmp_path: Path, sshd_server: SshServer) -> None:
    executor = SshExecutor(target(sshd_server))
    result = await executor.run(("sleep", "30"), 1)
    await executor.close()
    assert not result.ok
    assert result.exit_code == 124 or result.timed_out
    assert result.duration_s < 10
