"""Failpoints: inert unless armed, named by step, every name declared and used."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared import failpoints

PROJECT = Path(__file__).resolve().parents[2]


def test_every_failpoint_in_the_code_is_declared_and_every_declared_one_is_used() -> None:
    used = {
        name
        for path in (PROJECT / "services").rglob("*.py")
        for name in re.findall(r'failpoints\.reach\("([a-z0-9.-]+)"\)', path.read_text(encoding="utf-8"))
    }
    assert used == set(failpoints.POINTS)


async def test_an_unarmed_failpoint_does_nothing() -> None:
    await failpoints.reach("actuator.after-command")
    assert failpoints.hits["actuator.after-command"] == 0


async def test_an_armed_failpoint_raises_and_counts_then_is_inert_again() -> None:
    with failpoints.armed("actuator.after-publish", "raise"), pytest.raises(failpoints.FailpointError):
        await failpoints.reach("actuator.after-publish")
    assert failpoints.hits["actuator.after-publish"] == 1
    await failpoints.reach("actuator.after-publish")
    failpoints.hits.clear()


def test_a_misspelt_name_or_action_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown failpoint"):
        failpoints.enable("actuator.after-comand", "kill")
    with pytest.raises(ValueError, match="unknown failpoint action"):
        failpoints.arm_from_environment({failpoints.ENVIRONMENT_VARIABLE: "actuator.after-ack=explode"})
