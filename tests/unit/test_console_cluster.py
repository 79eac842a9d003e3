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
    cluster.set_pause("pause.all", b'{"mode": "all"}')
    cluster.containers(T0)
    cluster.containers(T0 + timedelta(seconds=2))
    assert explain.calls == 4


def test_a_missing_reading_is_reported_with_its_reason_not_as_zero() -> None:
    cluster = Cluster(explain=CountingExplain())
    cluster.add_sample(sample(reading(101, memory_pct=None, memory_missing="no-limit")))
    [row] = cluster.containers(T0)
    assert row["usage"]["memory_pct"] is None
    assert row["missing"] == {"memory": "no-limit"}
