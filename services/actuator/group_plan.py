"""The next step of a group's scale-out or scale-in, from its journal and the node. Pure.

The applier (group_applier.py) reads the facts — the source's config (its snapshots),
the new container's config (absent, locked, its net0 and tags), whether it runs, whether
the membership record lists it — asks `next_out_step` / `next_in_step`, does that one
step, journals it, and asks again. Every decision looks at the node as it is now, so a
step that ran before a crash is seen as done and a step that did not is done again;
each row of the crash analysis in docs/actuator.md ("Group operations") is a branch here.

Scale-out: reserve id -> reserve ip (static) -> snapshot -> clone -> tags -> net0 ->
delete snapshot -> start -> record membership -> event. The tag comes right after the
clone, before net0: it is what makes a clone a member for a restarted decider, so the
window in which an untagged clone exists is one step, and the journal covers even that.

A scale-out onto another node (`OutSpec.target`) clones with `--target`; the steps on the
clone then go to the node its config is on now (`OutFacts.clone_node`: the source's node
while the clone copies, the target once Proxmox moved it), as `pvesh` steps (`OnNode`).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.actuator import group_commands as gc
from services.actuator.ct_view import CtView
from services.actuator.group_records import Progress
from shared.models import EventOutcome

# Step names: they are journalled and listed in the event (`steps`).
RESERVE_ID, RESERVE_IP, RELEASE_IP = "reserve-id", "reserve-ip", "release-ip"
SNAPSHOT, CLONE, TAGS, NET, DELETE_SNAPSHOT = "snapshot", "clone", "tags", "net0", "delete-snapshot"
START, STOP, DESTROY, RECORD = "start", "stop", "destroy", "record-membership"


@dataclass(frozen=True)
class OutSpec:
    """What one scale-out must produce (from the intent and the group's settings)."""

    source_vmid: int
    snapname: str  # per intent, so a resumed operation knows which snapshot is its own
    hostname_prefix: str
    tag: str
    bridge: str
    gateway: str | None
    static_ip: bool
    full: bool | None = True  # None: Proxmox's choice (full unless a template)
    storage: str | None = None
    clone_timeout_s: float = 60.0
    target: str | None = None  # the node the clone should run on; None: this node

    def hostname(self, new_vmid: int) -> str:
        return f"{self.hostname_prefix}-{new_vmid}"[-63:].lstrip("-") or f"ct-{new_vmid}"


@dataclass(frozen=True)
class InSpec:
    member_vmid: int
    tag: str
    destroy: bool  # scale_in_policy destroy, and allow_destroy is true
    protected: frozenset[int] = frozenset()  # the source and the members listed by hand


@dataclass(frozen=True)
class OutFacts:
    source: CtView | None  # None: the source's config does not exist
    clone: CtView | None  # None: no config for the new id (yet)
    recorded: bool  # the membership record lists the new container
    clone_running: bool | None = None  # None: not asked yet
    waited_s: float = 0.0  # how long the clone's config has been seen locked
    clone_node: str | None = None  # the other node whose lxc dir holds the clone; None: this node


@dataclass(frozen=True)
class InFacts:
    member: CtView | None  # None: its config does not exist
    recorded: bool
    running: bool | None = None


# ------------------------------------------------------------------ steps


@dataclass(frozen=True)
class ReserveId:
    """Pick a free vmid (nextid, every node's conf dir, KV) and reserve it with `create`."""


@dataclass(frozen=True)
class ReserveIp:
    """Pick a free address of the pool and reserve it with `create`."""


@dataclass(frozen=True)
class ReleaseIp:
    """No clone holds the reserved address: give it back to the pool."""


@dataclass(frozen=True)
class Run:
    """Run one command; `name` is the step journalled (and in the event) when it succeeds."""

    name: str
    operation: gc.GroupOperation
    slow: bool = False  # the clone: its own, longer timeout


@dataclass(frozen=True)
class ReadStatus:
    vmid: int
    node: str | None = None  # another node (pvesh); None: this node (pct)


@dataclass(frozen=True)
class Wait:
    """The new container is locked (a clone still copying): look again shortly (the
    applier polls; the plan gives up after the clone timeout)."""

    reason: str


@dataclass(frozen=True)
class Record:
    """Update the membership record with compare-and-set: add or remove `vmid`."""

    vmid: int
    add: bool
    node: str | None = None  # the node an added member runs on; None: this node


@dataclass(frozen=True)
class Retarget:
    """The reserved id turned out to be taken by a container that is not ours: abandon
    it (its reservation stays, ids are never reused) and reserve another."""


@dataclass(frozen=True)
class Finish:
    outcome: EventOutcome
    detail: str
    message: str


Step = ReserveId | ReserveIp | ReleaseIp | Run | ReadStatus | Wait | Record | Retarget | Finish


# ------------------------------------------------------------------ scale-out


def next_out_step(
    spec: OutSpec, progress: Progress, facts: OutFacts, *, expired: bool, dry_run: bool
) -> Step:
    if progress.failure is not None:
        return _out_cleanup(spec, progress, facts)
    if progress.new_vmid is None:
        return _before_start(spec, facts, expired=expired, dry_run=dry_run)
    if facts.clone is None:
        return _toward_clone(spec, progress, facts)
    if not progress.clone_started:
        return Retarget()  # a config we did not make sits on our id
    return _after_clone(spec, progress, facts, progress.new_vmid, facts.clone)


def _toward_clone(spec: OutSpec, progress: Progress, facts: OutFacts) -> Step:
    """An id is ours and no container has it yet: address, snapshot, then the clone."""
    assert progress.new_vmid is not None
    if spec.static_ip and progress.ip is None:
        return ReserveIp()
    if facts.source is None:
        return _fail(CLONE, "unknown-container", f"source container {spec.source_vmid} does not exist")
    if spec.snapname not in facts.source.snapshots:
        return Run(SNAPSHOT, gc.snapshot(spec.source_vmid, spec.snapname))
    return Run(CLONE, _clone(spec, progress.new_vmid), slow=True)


def _after_clone(spec: OutSpec, progress: Progress, facts: OutFacts, new: int, clone: CtView) -> Step:
    """Our clone exists: finish it (tags, net0), clean the source, start, record."""
    if clone.lock is not None:
        if facts.waited_s >= spec.clone_timeout_s:
            message = f"container {new} is still locked ({clone.lock}) after {facts.waited_s:.0f} s"
            return _fail(CLONE, "clone-incomplete", message)
        return Wait(f"container {new} is locked ({clone.lock})")
    there = facts.clone_node
    if spec.tag not in clone.tags:
        return Run(TAGS, _on(there, gc.set_tags(new, _with_tag(clone.tags, spec.tag))))
    wanted = _net0(spec, progress, clone)
    if not _net_matches(clone, wanted):
        return Run(NET, _on(there, gc.set_net(new, wanted)))
    if facts.source is not None and spec.snapname in facts.source.snapshots:
        return Run(DELETE_SNAPSHOT, gc.delete_snapshot(spec.source_vmid, spec.snapname))
    if facts.clone_running is None:
        return ReadStatus(new, there)
    if not facts.clone_running:
        return Run(START, _on(there, gc.start(new)))
    if not facts.recorded:
        return Record(new, add=True, node=there)
    where = f" on {there}" if there is not None else ""
    return Finish("applied", "scaled-out", f"cloned {spec.source_vmid} to {new}{where}, started")


def _before_start(spec: OutSpec, facts: OutFacts, *, expired: bool, dry_run: bool) -> Step:
    """Nothing has been done yet: the last moment to refuse, expire or only pretend."""
    if facts.source is None:
        return Finish("failed", "unknown-container", f"source container {spec.source_vmid} does not exist")
    if expired:
        return Finish("skipped", "expired", "the intent expired before anything was done")
    if dry_run:
        return Finish("skipped", "dry-run", f"dry run: would clone {spec.source_vmid} to a new container")
    return ReserveId()


def _out_cleanup(spec: OutSpec, progress: Progress, facts: OutFacts) -> Step:
    """A step failed for good: leave no snapshot and no untagged clone, give the address
    back if no clone holds it, then report the failure (each cleanup step tried once)."""
    failure = progress.failure
    assert failure is not None
    clone, tried, new = facts.clone, progress.cleanup_tried, progress.new_vmid
    mine = clone is not None and progress.clone_started and new is not None
    if mine and clone is not None and new is not None and clone.lock is None:
        if spec.tag not in clone.tags and TAGS not in tried:
            return Run(TAGS, _on(facts.clone_node, gc.set_tags(new, _with_tag(clone.tags, spec.tag))))
        if not facts.recorded and RECORD not in tried:
            return Record(new, add=True, node=facts.clone_node)
    source = facts.source
    if source is not None and spec.snapname in source.snapshots and DELETE_SNAPSHOT not in tried:
        return Run(DELETE_SNAPSHOT, gc.delete_snapshot(spec.source_vmid, spec.snapname))
    if not mine and progress.ip is not None and RELEASE_IP not in tried:
        return ReleaseIp()
    where = f" on {facts.clone_node}" if facts.clone_node is not None else ""
    left = f"; container {new}{where} is kept, tagged, stopped" if mine else ""
    return Finish("failed", failure.code, f"{failure.step} failed: {failure.message}{left}")


# ------------------------------------------------------------------ scale-in


def next_in_step(spec: InSpec, progress: Progress, facts: InFacts, *, expired: bool, dry_run: bool) -> Step:
    vmid = spec.member_vmid
    if progress.failure is not None:
        failure = progress.failure
        return Finish("failed", failure.code, f"{failure.step} failed: {failure.message}")
    if not progress.steps:
        refused = _screen_in(spec, facts, expired=expired, dry_run=dry_run)
        if refused is not None:
            return refused
    if facts.member is not None:
        # A locked member (a backup) makes stop/destroy fail as `locked`, retried with back-off.
        if facts.running is None:
            return ReadStatus(vmid)
        if facts.running:
            return Run(STOP, gc.stop(vmid))
        if spec.destroy:
            return Run(DESTROY, gc.destroy(vmid, allow_destroy=True))
    elif spec.destroy and progress.ip is not None and RELEASE_IP not in progress.steps:
        return ReleaseIp()  # the destroyed clone's address goes back to the pool
    if facts.recorded:
        return Record(vmid, add=False)
    verb = "destroyed" if spec.destroy else "stopped"
    return Finish("applied", "scaled-in", f"{verb} {vmid}")


def _screen_in(spec: InSpec, facts: InFacts, *, expired: bool, dry_run: bool) -> Step | None:
    """Before the first step: only a tagged clone, never the source or a hand-listed member."""
    vmid = spec.member_vmid
    if vmid in spec.protected:
        return Finish("rejected", "not-a-clone", f"{vmid} is the source or listed by hand; never scaled in")
    if facts.member is None:
        if facts.recorded:
            return Record(vmid, add=False)
        return Finish("skipped", "unknown-container", f"container {vmid} does not exist")
    if spec.tag not in facts.member.tags:
        return Finish("rejected", "not-a-clone", f"{vmid} does not carry the tag {spec.tag}")
    if expired:
        return Finish("skipped", "expired", "the intent expired before anything was done")
    if dry_run:
        verb = "destroy" if spec.destroy else "stop"
        return Finish("skipped", "dry-run", f"dry run: would {verb} {vmid}")
    return None


# ------------------------------------------------------------------ helpers


def _fail(step: str, code: str, message: str) -> Finish:
    return Finish("failed", code, f"{step} failed: {message}")


def _clone(spec: OutSpec, new: int) -> gc.Clone:
    return gc.clone(
        spec.source_vmid, new, snapname=spec.snapname, hostname=spec.hostname(new),
        full=spec.full, storage=spec.storage, target=spec.target,
    )  # fmt: skip


def _on(node: str | None, operation: gc.RemoteOperation) -> gc.GroupOperation:
    """The step for the clone where it is: pct on this node, pvesh for another node."""
    return operation if node is None else gc.on_node(node, operation)


def _with_tag(tags: tuple[str, ...], tag: str) -> tuple[str, ...]:
    """The clone keeps the source's tags (Proxmox copied them) and gains the group's."""
    kept = tuple(dict.fromkeys(t for t in tags if not t.startswith(gc.GROUP_TAG_PREFIX)))
    return (*kept[: gc.MAX_TAGS - 1], tag)


def _net0(spec: OutSpec, progress: Progress, clone: CtView) -> gc.Net0:
    hwaddr = clone.nets.get("net0", {}).get("hwaddr")
    return gc.net0(spec.bridge, progress.ip or "dhcp", spec.gateway, hwaddr)


def _net_matches(clone: CtView, wanted: gc.Net0) -> bool:
    have = clone.nets.get("net0", {})
    return (
        have.get("bridge") == wanted.bridge
        and have.get("ip") == wanted.ip
        and have.get("gw") == wanted.gateway
        and have.get("name", "eth0") == wanted.name
    )
