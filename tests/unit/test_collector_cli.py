"""`lxc-autoscale collector --once`: a sample on stdout, no broker needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_collector_v2tree import V2Tree

from cli.main import build_parser, main
from services.collector import main as collector_main
from shared.clock import FakeClock
from shared.models import NodeSample


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "lxc_autoscale.yaml"
    path.write_text("DEFAULT:\n  memory_exclude_cache: true\n  ignore_lxc: [109]\n")
    return path


def test_once_json_prints_a_node_sample_the_decider_can_read(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = V2Tree(tmp_path / "node")
    tree.container(101, cores=2, memory=1024, used_mb=256, cache_mb=512)
    tree.container(102, running=False)
    tree.container(109)
    code = main(
        ["collector", "--once", "--json", "--interval", "0.05", "--root", str(tree.root),
         "--config", str(config), "--log-format", "json"]
    )  # fmt: skip
    assert code == 0
    sample = NodeSample.model_validate_json(capsys.readouterr().out)
    assert sample.node == "pve1"  # from <root>/etc/hostname
    assert [c.vmid for c in sample.containers] == [101, 102]  # 109 is ignored
    web = sample.containers[0]
    assert web.memory_pct == pytest.approx(25.0, abs=0.1)
    assert web.cpu_pct == 0.0  # counters did not move: idle, and a real reading


def test_once_measures_cpu_between_its_two_reads(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = V2Tree(tmp_path / "node")
    tree.container(101, cores=2, usage_usec=3_000_000)
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        tree.add_usage(101, 1_500_000)  # 1.5 CPU-seconds in 2 s on 2 cores
        clock.advance(seconds)

    args = build_parser("collector").parse_args(
        ["collector", "--once", "--json", "--interval", "2", "--root", str(tree.root),
         "--config", str(config), "--node", "pve7"]
    )  # fmt: skip
    assert collector_main.run(args, clock=clock, sleep=sleep) == 0
    sample = NodeSample.model_validate_json(capsys.readouterr().out)
    assert sample.node == "pve7"
    assert sample.containers[0].cpu_pct == pytest.approx(37.5, abs=0.1)
    assert sample.interval_s == 2


def test_once_without_json_prints_a_table(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = V2Tree(tmp_path / "node")
    tree.container(101, memory=1024, used_mb=512)
    args = ["collector", "--once", "--interval", "0.01", "--root", str(tree.root), "--config", str(config)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "101" in out and "running" in out and "50.0" in out


def test_a_root_without_a_node_is_refused_with_a_clear_message(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["collector", "--once", "--root", str(empty), "--config", str(config), "--node", "pve1"])
    assert code == 2
    assert "no metric source found" in capsys.readouterr().err


def test_an_invalid_node_name_is_refused(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = V2Tree(tmp_path / "node")
    code = main(["collector", "--once", "--root", str(tree.root), "--config", str(config), "--node", "pve.*"])
    assert code == 2
    assert "node name" in capsys.readouterr().err


def test_a_non_positive_interval_is_refused_by_the_parser(config: Path) -> None:
    with pytest.raises(SystemExit):
        main(["collector", "--once", "--interval", "0", "--config", str(config)])
