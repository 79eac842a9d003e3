"""`lxc-autoscale decide`: the worked cases of docs/decider.md, through the command line."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support import T0, reading, sample

from cli.main import main
from shared.models import ContainerReading

CONFIG = "DEFAULT:\n  scale_down_stabilization_s: {window}\n  min_memory: 512\n"


def run_decide(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *readings: ContainerReading,
    window: int = 0,
    state: dict[str, Any] | None = None,
    seq: int = 1,
    after_s: float = 0,
) -> dict[str, Any]:
    config = tmp_path / "autoscale.yaml"
    config.write_text(CONFIG.format(window=window))
    sample_file = tmp_path / f"sample-{seq}.json"
    sample_file.write_text(
        sample(*readings, seq=seq, taken_at=T0 + timedelta(seconds=after_s)).model_dump_json()
    )
    argv = ["decide", "--config", str(config), "--sample", str(sample_file)]
    if state is not None:
        state_file = tmp_path / f"state-{seq}.json"
        state_file.write_text(json.dumps(state))
        argv += ["--state", str(state_file)]
    assert main(argv) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def sizes(result: dict[str, Any]) -> dict[int, tuple[int, int]]:
    return {i["vmid"]: (i["target"]["cores"], i["target"]["memory_mb"]) for i in result["intents"]}


@pytest.mark.parametrize(
    ("ct", "expected"),
    [
        pytest.param({"cpu_pct": 95.0}, (4, 1024), id="case 1: cpu 95% at 2 cores gets 2 more cores"),
        pytest.param({"memory_pct": 90.0}, (2, 2730), id="case 2: memory 90% at 1024 MB grows to 2730 MB"),
        pytest.param({"cpu_pct": 0.0, "cores": 4}, (1, 1024), id="case 3: cpu 0% at 4 cores drops to 1 core"),
        pytest.param(
            {"memory_pct": 5.0, "memory_mb": 600}, (2, 512), id="case 4: 600 MB shrinks to 512, not 472"
        ),
        pytest.param(
            {"cpu_pct": None, "cpu_missing": "first-sample", "cores": 4},
            None,
            id="case 5: no cpu reading, no change",
        ),
    ],
)
def test_worked_cases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ct: dict[str, Any], expected: tuple[int, int] | None
) -> None:
    result = run_decide(tmp_path, capsys, reading(101, **ct))
    assert sizes(result).get(101) == expected


def test_case_6_a_scale_down_waits_out_the_window_when_state_is_chained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    idle = reading(101, cpu_pct=0.0, cores=4)
    first = run_decide(tmp_path, capsys, idle, window=300)
    assert first["intents"] == []
    assert first["state_changes"]["pve1.101"]["cpu"]["window"] == [{"at": T0.timestamp(), "value": 1}]
    second = run_decide(tmp_path, capsys, idle, window=300, state=first["state_changes"], seq=2, after_s=300)
    assert sizes(second) == {101: (1, 1024)}
    assert second["intents"][0]["reason"]["summary"] == "ct 101: cpu 0.0% < 20% for 300s: cores 4 → 1"


def test_a_container_needing_nothing_prints_no_state_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_decide(tmp_path, capsys, reading(101))
    assert result == {**result, "intents": [], "state_changes": {}, "ignored": None}


def test_a_bad_sample_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("DEFAULT: {}\n")
    bad = tmp_path / "s.json"
    bad.write_text('{"node": "pve1"}')
    assert main(["decide", "--config", str(config), "--sample", str(bad)]) == 2
    assert "NodeSample" in capsys.readouterr().err
