"""The chaos run under pytest: AUTOSCALE_CHAOS_S seconds of kills on a three-server
cluster, then the accounting (tests/chaos/chaos_run.py); its JSON figures line is printed
to the test log. Only when AUTOSCALE_CHAOS_S is set, to keep `make test` short; CI runs
`python -m tests.chaos.chaos_run` itself (.ci/run)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.chaos.chaos_run import KINDS, ChaosRun

CHAOS_S = float(os.environ.get("AUTOSCALE_CHAOS_S", "0"))
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHAOS_S, reason="set AUTOSCALE_CHAOS_S (seconds) to run the chaos run"),
]


async def test_nothing_is_lost_or_applied_twice_while_servers_and_services_are_killed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("AUTOSCALE_CHAOS_SEED", time.time()))
    figures = await ChaosRun(tmp_path, seed).run(CHAOS_S)
    line = figures.line()
    with capsys.disabled():
        print(f"\nchaos seed {seed}\n{line}", flush=True)
    assert figures.problems == [], line
    assert all(figures.kills[kind] >= 1 for kind in KINDS), line
    assert figures.leader_kills >= 1, line
    assert figures.outcomes["applied"] >= 6, line  # the swinging load did scale, up and down
    assert json.loads(line)["ok"] is True
