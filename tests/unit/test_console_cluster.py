"""The console's in-memory view: newest sample wins, events are filtered and bounded,
explanations are recomputed when what they depend on changes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from support import T0, reading, sample

from services.console.cluster import Cluster, EventFilter
from shared.explanation import ContainerExplanation
from shared.models import NodeSample, ScaleEvent


class CountingExplain:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(
        self, sample: NodeSample, states: Mapping[int, bytes], pauses: Mapping[str, bytes], now: datetime
    ) -> dict[int, ContainerExplanation]:
        self.calls += 1
        return {
            c.vmid: ContainerExplanation(vmid=c.vmid, tier=None, verdict="none", reason=f"call {self.calls}")
            for c in sample.containers
        }


def event(vmid: int, outcome: str = "applied", seconds: int = 0, node: str = "pve1") -> ScaleEvent:
    return ScaleEvent(
        event_id=f"e{vmid}-{seconds}", intent_id="i", node=node, vmid=vmid, outcome=outcome,  # type: ignore[arg-type]
        detail="resized", occurred_at=T0 + timedelta(seconds=seconds),
    )  # fmt: skip


def test_an_older_sample_never_replaces_a_newer_one() -> None:
    cluster = Cluster(explain=CountingExplain())
    cluster.add_sample(sample(reading(101, cores=3), seq=2, taken_at=T0))
    cluster.add_sample(sample(reading(101, cores=2), seq=1, taken_at=T0 - timedelta(seconds=10)))
    [row] = cluster.containers(T0)
    assert row["size"]["cores"] == 3


def test_events_are_newest_first_filtered_and_bounded() -> None:
    cluster = Cluster(explain=CountingExplain(), events_kept=3)
    for i, (vmid, outcome) in enumerate(
        [(101, "applied"), (102, "failed"), (101, "skipped"), (101, "applied")]
    ):
        cluster.add_event(event(vmid, outcome, seconds=i))
    assert [e["event_id"] for e in cluster.recent_events(EventFilter())] == ["e101-3", "e101-2", "e102-1"]
    assert [e["event_id"] for e in cluster.recent_events(EventFilter(vmid=101, outcome="applied"))] == [
        "e101-3"
    ]
    since = EventFilter(since=T0 + timedelta(seconds=2), limit=1)
    assert [e["event_id"] for e in cluster.recent_events(since)] == ["e101-3"]


def test_explanations_are_cached_until_state_pauses_or_time_move() -> None:
    explain = CountingExplain()
    cluster = Cluster(explain=explain)
    cluster.add_sample(sample(reading(101)))
    cluster.containers(T0)
    cluster.containers(T0)
    assert explain.calls == 1
    cluster.set_state("pve1", 101, b"{}")
    assert cluster.containers(T0)[0]["decision"]["reason"] == "call 2"
    cluster.set_policy("pause.all", b'{"mode": "all"}')
    cluster.containers(T0)
    cluster.containers(T0 + timedelta(seconds=2))
    assert explain.calls == 4


def test_a_missing_reading_is_reported_with_its_reason_not_as_zero() -> None:
    cluster = Cluster(explain=CountingExplain())
    cluster.add_sample(sample(reading(101, memory_pct=None, memory_missing="no-limit")))
    [row] = cluster.containers(T0)
    assert row["usage"]["memory_pct"] is None
    assert row["missing"] == {"memory": "no-limit"}


def test_pauses_of_every_scope_are_listed_with_whether_they_are_in_force() -> None:
    cluster = Cluster(explain=CountingExplain())
    cluster.set_policy("pause.all", b'{"mode": "scale-down", "until": "2020-01-01T00:00:00Z"}')
    cluster.set_policy("pause.pve1.all", b'{"mode": "all", "reason": "firmware"}')
    cluster.set_policy("pause.pve1.101", b'{"mode": "sideways"}')
    cluster.set_policy("dry_run", b'{"enabled": true}')
    rows = {row["key"]: row for row in cluster.paused(T0)}
    assert set(rows) == {"pause.all", "pause.pve1.all", "pause.pve1.101"}
    assert (rows["pause.all"]["scope"], rows["pause.all"]["active"]) == ("global", False)
    assert rows["pause.pve1.all"] == {
        "key": "pause.pve1.all", "scope": "node", "node": "pve1", "vmid": None,
        "mode": "all", "until": None, "reason": "firmware", "active": True,
    }  # fmt: skip
    assert rows["pause.pve1.101"]["active"] is False and "sideways" in rows["pause.pve1.101"]["invalid"]


def test_dry_run_comes_from_the_switch_while_one_is_stored_then_from_the_file() -> None:
    cluster = Cluster(explain=CountingExplain(), dry_run_configured=True)
    expected = {"enabled": True, "source": "configuration", "configured": True, "switch": None}
    assert cluster.dry_run() == expected
    cluster.set_policy("dry_run", b'{"enabled": false, "reason": "go live"}')
    shown = cluster.dry_run()
    assert (shown["enabled"], shown["source"], shown["switch"]["reason"]) == (False, "operator", "go live")
    cluster.set_policy("dry_run", None)
    assert cluster.dry_run()["enabled"] is True


def test_both_cpu_figures_are_shown() -> None:
    cluster = Cluster(explain=CountingExplain())
    cluster.add_sample(sample(reading(101, cpu_pct=80.0, cpu_pct_proxmox=40.0)))
    [row] = cluster.containers(T0)
    assert (row["usage"]["cpu_pct"], row["usage"]["cpu_pct_proxmox"]) == (80.0, 40.0)


def test_only_the_journal_entry_of_a_container_means_the_actuator_is_applying() -> None:
    cluster = Cluster(explain=CountingExplain())
    cluster.add_sample(sample(reading(101), reading(102)))
    cluster.set_journal("pve1.101", b'{"intent": {}}')
    cluster.set_journal("pve1.102.0123abcd", b'{"event": {}, "published": true}')  # a settled outcome
    assert {r["vmid"]: r["in_flight"] for r in cluster.containers(T0)} == {101: True, 102: False}
    cluster.set_journal("pve1.101", None)  # the outcome is stored, the entry deleted
    assert not any(r["in_flight"] for r in cluster.containers(T0))
