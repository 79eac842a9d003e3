"""What the console knows: the latest sample of each node, the raw KV entries it
follows, and recent events, with the JSON views the API serves. Pure: fed by the
follower, asked by the web layer, time passed in.

Explanations (the policy's verdict per container) are computed per node by the injected
`Explain` and cached until that node's sample, its states or the policy entries (pauses,
dry-run switch) change, or for at most `EXPLAIN_MAX_AGE_S`, so a busy page does not
re-run the policy per request.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.console.groups import group_views
from shared.config import HorizontalGroup
from shared.dry_run import DRY_RUN_KEY, effective_dry_run, read_dry_run
from shared.explanation import ContainerExplanation, Explain, ExplainGroups
from shared.models import ContainerReading, NodeSample, ScaleEvent
from shared.pauses import PauseEntry, pause_target

EXPLAIN_MAX_AGE_S = 1.0


@dataclass(frozen=True)
class EventFilter:
    node: str | None = None
    vmid: int | None = None
    outcome: str | None = None
    since: datetime | None = None
    limit: int = 100

    def matches(self, event: ScaleEvent) -> bool:
        return (
            (self.node is None or event.node == self.node)
            and (self.vmid is None or event.vmid == self.vmid)
            and (self.outcome is None or event.outcome == self.outcome)
            and (self.since is None or event.occurred_at >= self.since)
        )


@dataclass
class _Explained:
    at: float
    by_vmid: dict[int, ContainerExplanation]


@dataclass
class Cluster:
    explain: Explain
    events_kept: int = 500
    dry_run_configured: bool = False  # DEFAULT.dry_run of the configuration, while no switch is stored
    groups_configured: dict[str, HorizontalGroup] = field(default_factory=dict)
    explain_groups: ExplainGroups | None = None  # the deciders' group decision (composition root)
    samples: dict[str, NodeSample] = field(default_factory=dict)
    states: dict[str, dict[int, bytes]] = field(default_factory=dict)  # node -> vmid -> raw state
    policy: dict[str, bytes] = field(default_factory=dict)  # autoscale_policy: KV key -> raw entry
    in_flight: set[str] = field(default_factory=set)  # actuator journal keys not yet settled
    backups: set[str] = field(default_factory=set)  # `<node>.<vmid>` with a saved original size
    group_records: dict[str, bytes] = field(default_factory=dict)  # autoscale_groups: key -> raw record
    events: deque[ScaleEvent] = field(default_factory=deque)
    version: int = 0  # bumped on every change: the web layer's cached bodies check it
    _explained: dict[str, _Explained] = field(default_factory=dict)

    # ------------------------------------------------------------ fed by the follower

    def add_sample(self, sample: NodeSample) -> None:
        current = self.samples.get(sample.node)
        if current is not None and current.taken_at > sample.taken_at:
            return  # a late redelivery never replaces a newer view
        self.samples[sample.node] = sample
        self._explained.pop(sample.node, None)
        self.version += 1

    def set_state(self, node: str, vmid: int, raw: bytes | None) -> None:
        node_states = self.states.setdefault(node, {})
        if raw:
            node_states[vmid] = raw
        else:
            node_states.pop(vmid, None)
        self._explained.pop(node, None)
        self.version += 1

    def set_policy(self, key: str, raw: bytes | None) -> None:
        if raw:
            self.policy[key] = raw
        else:
            self.policy.pop(key, None)
        self._explained.clear()
        self.version += 1

    def set_journal(self, key: str, raw: bytes | None) -> None:
        """An entry of the actuator's journal bucket. Only `<node>.<vmid>` is the in-flight
        entry (written before `pct set`, deleted once the outcome is stored); longer keys
        are stored outcomes of settled intents, and say nothing about work in flight."""
        node, _, vmid = key.partition(".")
        if not node or not vmid.isdigit():
            return
        (self.in_flight.add if raw else self.in_flight.discard)(key)
        self.version += 1

    def set_backup(self, key: str, saved: bool) -> None:
        (self.backups.add if saved else self.backups.discard)(key)
        self.version += 1

    def set_group_record(self, key: str, raw: bytes | None) -> None:
        if raw:
            self.group_records[key] = raw
        else:
            self.group_records.pop(key, None)
        self.version += 1

    def add_event(self, event: ScaleEvent) -> None:
        self.events.append(event)
        while len(self.events) > self.events_kept:
            self.events.popleft()
        self.version += 1

    # ------------------------------------------------------------ asked by the API

    def explanations(self, node: str, now: datetime) -> dict[int, ContainerExplanation]:
        sample = self.samples.get(node)
        if sample is None:
            return {}
        cached = self._explained.get(node)
        if cached is not None and now.timestamp() - cached.at < EXPLAIN_MAX_AGE_S:
            return cached.by_vmid
        by_vmid = self.explain(sample, self.states.get(node, {}), self.policy, now)
        self._explained[node] = _Explained(at=now.timestamp(), by_vmid=by_vmid)
        return by_vmid

    def nodes(self, now: datetime) -> list[dict[str, Any]]:
        return [_node_view(sample, now) for _, sample in sorted(self.samples.items())]

    def containers(
        self, now: datetime, node: str | None = None, vmid: int | None = None
    ) -> list[dict[str, Any]]:
        rows = []
        dry_run = self.dry_run()["enabled"]
        for name, sample in sorted(self.samples.items()):
            if node is not None and name != node:
                continue
            explained = self.explanations(name, now)
            for reading in sorted(sample.containers, key=lambda r: r.vmid):
                if vmid is None or reading.vmid == vmid:
                    row = self._container_view(sample, reading, explained.get(reading.vmid), now)
                    row["dry_run"] = dry_run  # an intent decided for it now would only be recorded
                    rows.append(row)
        return rows

    def recent_events(self, query: EventFilter) -> list[dict[str, Any]]:
        """Newest first."""
        found = []
        for event in reversed(self.events):
            if query.matches(event):
                found.append(event_view(event))
                if len(found) >= query.limit:
                    break
        return found

    def paused(self, now: datetime) -> list[dict[str, Any]]:
        """Every stored pause (global, node, container), with whether it is in force now."""
        rows = []
        for key, raw in sorted(self.policy.items()):
            target = pause_target(key)
            if target is None:
                continue
            row: dict[str, Any] = {"key": key, "scope": target.scope}
            row.update(node=target.node, vmid=target.vmid)
            try:
                entry = PauseEntry.model_validate_json(raw)
            except ValueError:
                row.update(active=False, invalid=raw.decode(errors="replace")[:500])
            else:
                row.update(active=entry.active(now), **entry.model_dump(mode="json"))
            rows.append(row)
        return rows

    def groups(self, now: datetime) -> list[dict[str, Any]]:
        """Horizontal groups: members and decision as the deciders see them now."""
        if self.explain_groups is None or not self.groups_configured:
            return []
        explained = self.explain_groups(self.samples, self.group_records, self.policy, now)
        return group_views(explained, self.groups_configured, self.samples, self.group_records, now)

    def dry_run(self) -> dict[str, Any]:
        """Whether intents decided now are dry runs, and who said so."""
        switch = read_dry_run(self.policy.get(DRY_RUN_KEY))
        enabled, source = effective_dry_run(switch, self.dry_run_configured)
        return {
            "enabled": enabled,
            "source": source,
            "configured": self.dry_run_configured,
            "switch": switch.model_dump(mode="json") if switch else None,
        }

    def _container_view(
        self,
        sample: NodeSample,
        reading: ContainerReading,
        explained: ContainerExplanation | None,
        now: datetime,
    ) -> dict[str, Any]:
        key = f"{sample.node}.{reading.vmid}"
        view: dict[str, Any] = {
            "node": sample.node,
            "vmid": reading.vmid,
            "hostname": reading.hostname,
            "status": reading.status,
            "tier": explained.tier if explained else None,
            "size": {"cores": reading.cores, "memory_mb": reading.memory_mb},
            "cpulimit": reading.cpulimit,
            "lock": reading.lock,
            "usage": _usage(reading),
            "missing": _missing(reading),
            "sample": {"taken_at": sample.taken_at.isoformat(), "age_s": _age(sample, now)},
            "in_flight": key in self.in_flight,
            "rollback_available": key in self.backups,
        }
        if explained is not None:
            view.update(_explained_view(explained))
        return view


def _usage(reading: ContainerReading) -> dict[str, Any]:
    return {
        "cpu_pct": reading.cpu_pct,
        "cpu_pct_proxmox": reading.cpu_pct_proxmox,
        "memory_pct": reading.memory_pct,
        "memory_used_mb": reading.memory_used_mb,
        "cpu_pressure_pct": reading.cpu_pressure_some_avg10,
        "memory_pressure_pct": reading.memory_pressure_some_avg10,
        "oom_kills": reading.oom_kills,
        "running_for_s": reading.running_for_s,
    }


def _missing(reading: ContainerReading) -> dict[str, str]:
    """Why a reading is absent (never shown as 0 %)."""
    pairs = (("cpu", reading.cpu_missing), ("memory", reading.memory_missing))
    return {name: why for name, why in pairs if why is not None}


def _explained_view(explained: ContainerExplanation) -> dict[str, Any]:
    pending = explained.pending
    return {
        "decision": {
            "verdict": explained.verdict,
            "target": explained.target.model_dump() if explained.target else None,
            "rule": explained.rule,
            "reason": explained.reason,
        },
        "pending": None if pending is None else {
            "intent_id": pending.intent_id,
            "target": pending.target.model_dump(),
            "reason": pending.reason.summary,
            "dry_run": pending.dry_run,
            "expires_at": pending.expires_at.isoformat(),
        },
        "pause": None if explained.pause is None else {
            "scope": explained.pause_scope, **explained.pause.model_dump(mode="json"),
        },
        "timers": {
            "warmup_left_s": explained.warmup_left_s,
            "cpu": explained.cpu.model_dump(exclude_none=True),
            "memory": explained.memory.model_dump(exclude_none=True),
        },
        "thresholds": explained.thresholds,
    }  # fmt: skip


def _node_view(sample: NodeSample, now: datetime) -> dict[str, Any]:
    running = sum(1 for c in sample.containers if c.status == "running")
    return {
        "node": sample.node,
        "containers": len(sample.containers),
        "running": running,
        "host": sample.host.model_dump(),
        "source": sample.source,
        "last_sample": {
            "taken_at": sample.taken_at.isoformat(),
            "age_s": _age(sample, now),
            "seq": sample.seq,
            "interval_s": sample.interval_s,
            "stale": _age(sample, now) > 3 * sample.interval_s,
        },
    }


def event_view(event: ScaleEvent) -> dict[str, Any]:
    return event.model_dump(mode="json")


def _age(sample: NodeSample, now: datetime) -> float:
    return round((now - sample.taken_at).total_seconds(), 1)
