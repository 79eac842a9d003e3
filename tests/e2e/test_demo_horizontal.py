"""End to end: `lxc-autoscale demo --scenario horizontal` clones a group out under load
and back in when the load ends, through every service, checked from outside."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(
    r"^summary: intents=(\d+) applied=(\d+) skipped=(\d+) failed=(\d+) scale_up=(\d+) scale_down=(\d+) "
    r"scale_out=(\d+) scale_in=(\d+)$"
)
SOURCE = 301  # the group's source in simnode/scenarios/horizontal.json
SCENARIO = ROOT / "simnode" / "scenarios" / "horizontal.json"

pytestmark = [
    pytest.mark.e2e,
    # The scenario comes with the simulator's group workload (issue 12, simulator part).
    pytest.mark.skipif(not SCENARIO.exists(), reason="simnode/scenarios/horizontal.json is not there yet"),
]


def _conf(workdir: Path, vmid: int) -> str:
    return (workdir / "node" / "etc" / "pve" / "lxc" / f"{vmid}.conf").read_text()


def test_the_horizontal_demo_scales_a_group_out_one_clone_at_a_time_and_back_in(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NATS_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--scenario", "horizontal", "--workdir", str(tmp_path),
         "--console-port", "0"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=240,
    )  # fmt: skip
    output = done.stdout
    assert done.returncode == 0, output + done.stderr
    lines = output.strip().splitlines()
    match = SUMMARY.match(lines[-1])
    assert match, f"last line is not the summary: {lines[-1]!r}"
    intents, applied, _skipped, failed, scale_up, scale_down, scale_out, scale_in = map(int, match.groups())
    assert failed == 0 and (scale_up, scale_down) == (0, 0)  # the group's own doing only
    assert scale_out == 2 and scale_in == 2 and applied == intents == 4  # to max 3, back to min 1

    actions = [line for line in lines if " group app " in line]
    outs = [re.search(r"scale-out 301→(\d+)", line) for line in actions if "scale-out" in line]
    ins = [re.search(r"scale-in -(\d+)", line) for line in actions if "scale-in" in line]
    clones = [int(m.group(1)) for m in outs if m]
    removed = [int(m.group(1)) for m in ins if m]
    assert len(clones) == 2 and len(set(clones)) == 2 and SOURCE not in clones
    assert removed == list(reversed(clones))  # the newest clone goes first, the source never
    first_in = next(i for i, line in enumerate(actions) if "scale-in" in line)
    assert all("scale-out" in line for line in actions[:first_in])  # out under load, then in
    for vmid in clones:  # tagged, stopped (not destroyed: no allow_destroy)
        conf = _conf(tmp_path, vmid)
        assert "autoscale-group-app" in conf
    assert "autoscale-group-app" not in _conf(tmp_path, SOURCE)
