from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from nats.js.errors import KeyNotFoundError

from cli.main import main
from services.decider.policy.pause import PauseEntry
from shared import subjects
from shared.dry_run import DryRunEntry
from shared.embedded_broker import EmbeddedBroker


@pytest.fixture
def pause(broker: EmbeddedBroker, tmp_path: Path) -> Any:
    config = tmp_path / "config.yaml"
    config.write_text("DEFAULT: {}\n")

    def run(*args: str) -> int:
        return main(["pause", "--nats-url", broker.url, "--config", str(config), *args])

    return run


async def test_pause_and_resume_write_what_the_deciders_follow(
    pause: Any, nc: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    kv = await nc.jetstream().key_value(subjects.POLICY_BUCKET)
    # main() runs its own event loop, so it runs in a worker thread here.
    args = ("--node", "pve1", "--vmid", "101", "--mode", "scale-down", "--reason", "maintenance")
    assert await asyncio.to_thread(pause, *args) == 0
    assert "pause.pve1.101: paused (scale-down)" in capsys.readouterr().out
    entry = PauseEntry.model_validate_json((await kv.get("pause.pve1.101")).value)
    assert (entry.mode, entry.reason) == ("scale-down", "maintenance")

    assert await asyncio.to_thread(pause, "--resume", "--node", "pve1", "--vmid", "101") == 0
    assert "pause.pve1.101: resumed" in capsys.readouterr().out
    with pytest.raises(KeyNotFoundError):
        await kv.get("pause.pve1.101")


async def test_a_global_pause_has_its_own_key(pause: Any, nc: Any) -> None:
    kv = await nc.jetstream().key_value(subjects.POLICY_BUCKET)
    assert await asyncio.to_thread(pause, "--until", "2030-01-01T00:00:00+00:00") == 0
    entry = PauseEntry.model_validate_json((await kv.get("pause.all")).value)
    assert entry.mode == "all" and entry.until is not None


def test_a_container_pause_needs_a_valid_node_and_vmid(
    pause: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pause("--vmid", "101") == 2
    assert "needs its node" in capsys.readouterr().err
    assert pause("--node", "pve1.evil", "--vmid", "101") == 2
    assert pause("--node", "pve1", "--vmid", "5") == 2
    assert pause("--until", "2030-01-01T00:00:00") == 2
    assert "time zone" in capsys.readouterr().err


async def test_a_node_pause_has_its_own_key_and_resumes(
    pause: Any, nc: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    kv = await nc.jetstream().key_value(subjects.POLICY_BUCKET)
    args = ("--node", "pve2", "--until", "2030-01-01T00:00:00+00:00", "--reason", "firmware")
    assert await asyncio.to_thread(pause, *args) == 0
    assert "pause.pve2.all: paused (all) until 2030-01-01T00:00:00+00:00" in capsys.readouterr().out
    entry = PauseEntry.model_validate_json((await kv.get("pause.pve2.all")).value)
    assert (entry.mode, entry.reason, entry.until.year if entry.until else None) == ("all", "firmware", 2030)
    assert await asyncio.to_thread(pause, "--resume", "--node", "pve2") == 0
    with pytest.raises(KeyNotFoundError):
        await kv.get("pause.pve2.all")


async def test_dry_run_switches_on_off_and_back_to_the_file(
    broker: EmbeddedBroker, nc: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("DEFAULT: {dry_run: true}\n")
    kv = await nc.jetstream().key_value(subjects.POLICY_BUCKET)

    def dry_run(*args: str) -> int:
        return main(["dry-run", "--nats-url", broker.url, "--config", str(config), *args])

    assert await asyncio.to_thread(dry_run) == 0
    assert capsys.readouterr().out.strip() == "dry-run on (configuration)"
    assert await asyncio.to_thread(dry_run, "off", "--reason", "go live") == 0
    assert capsys.readouterr().out.strip() == "dry-run off (operator: go live)"
    assert DryRunEntry.model_validate_json((await kv.get("dry_run")).value).enabled is False
    assert await asyncio.to_thread(dry_run, "config") == 0
    assert capsys.readouterr().out.strip() == "dry-run on (configuration)"
    with pytest.raises(KeyNotFoundError):
        await kv.get("dry_run")
    with pytest.raises(SystemExit):
        dry_run("maybe")
