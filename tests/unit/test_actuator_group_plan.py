"""The group plan: a scale-out or scale-in resumed after a crash at any step ends right.

A small model of a node (configs as text, parsed by ct_view as the applier does) carries
out the plan's steps; a "crash" throws away everything not yet journalled, either just
before a step or just after it, and the operation starts again from the journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from services.actuator import group_commands as gc
from services.actuator import group_plan as gp
from services.actuator.commands import CommandRefused, Start, Stop
from services.actuator.ct_view import CtView, parse_ct
from services.actuator.group_records import Progress, StepFailure

SOURCE = 101
TAG = gc.group_tag("web")
SPEC = gp.OutSpec(
    source_vmid=SOURCE, snapname="autoscale-0123456789abcdef", hostname_prefix="web", tag=TAG,
    bridge="vmbr0", gateway="10.0.0.1", static_ip=True,
)  # fmt: skip
POOL = ["10.0.0.10/24", "10.0.0.11/24"]
HERE, THERE = "pve1", "pve2"  # the actuator's node, the target of a least-loaded scale-out
SPEC_THERE = replace(SPEC, target=THERE)


@dataclass
class Ct:
    main: dict[str, str]
    snapshots: set[str] = field(default_factory=set)
    running: bool = False

    def text(self) -> str:
        lines = [f"{key}: {value}" for key, value in self.main.items()]
        for name in sorted(self.snapshots):
            lines += ["", f"[{name}]", "cores: 2"]
        return "\n".join(lines) + "\n"


@dataclass
class Node:
    """A node and the groups bucket, as far as the plan can see them."""

    cts: dict[int, Ct]
    members: dict[int, str] = field(default_factory=dict)  # vmid -> its node, as recorded
    where: dict[int, str] = field(default_factory=dict)  # the node of a CT (absent: HERE)
    ids: set[int] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)
    commands: list[str] = field(default_factory=list)
    fail: str | None = None  # a step name that fails for good

    def out_facts(self, progress: Progress, running: bool | None = None) -> gp.OutFacts:
        new = progress.new_vmid
        node = self.where.get(new, HERE) if new else HERE
        return gp.OutFacts(
            source=self.view(SOURCE), clone=self.view(new) if new else None,
            recorded=new in self.members, clone_running=running,
            clone_node=None if node == HERE else node,
        )  # fmt: skip

    def view(self, vmid: int) -> CtView | None:
        ct = self.cts.get(vmid)
        return parse_ct(ct.text()) if ct is not None else None

    def run(self, op: gc.GroupOperation) -> bool:
        node = HERE
        if isinstance(op, gc.OnNode):
            node, op = op.node, op.operation  # pvesh: Proxmox runs it on that node
        name = type(op).__name__
        self.commands.append(name if node == HERE else f"{name}@{node}")
        if self.fail == name:
            return False
        vmid = getattr(op, "vmid", getattr(op, "source_vmid", None))
        # pct and the proxied API method only find a config on the node they run on
        assert self.where.get(vmid, HERE) == node, f"{name}: CT {vmid} is not on {node}"
        match op:
            case gc.Snapshot(vmid, snap):
                assert snap not in self.cts[vmid].snapshots, "pct: snapshot name already used"
                self.cts[vmid].snapshots.add(snap)
            case gc.DeleteSnapshot(vmid, snap):
                self.cts[vmid].snapshots.remove(snap)
            case gc.Clone(source, new, snap, hostname, target=target):
                assert new not in self.cts, "pct: CT already exists"
                main = dict(self.cts[source].main, hostname=hostname)
                main["net0"] = main["net0"].replace(
                    "hwaddr=AA:AA:AA:AA:AA:AA", f"hwaddr=BC:24:11:00:00:{new % 100:02d}"
                )
                self.cts[new] = Ct(main)
                if target is not None:
                    self.where[new] = target  # move_config_to_node at the end of the task
            case gc.SetTags(vmid, tags):
                self.cts[vmid].main["tags"] = ";".join(tags)
            case gc.SetNet(vmid, net):
                self.cts[vmid].main["net0"] = net.render()
            case Start(vmid):
                self.cts[vmid].running = True
            case Stop(vmid):
                self.cts[vmid].running = False
            case gc.Destroy(vmid):
                assert not self.cts[vmid].running
                del self.cts[vmid]
        return True


def fresh_node() -> Node:
    net0 = "name=eth0,bridge=vmbr0,hwaddr=AA:AA:AA:AA:AA:AA,ip=10.0.0.2/24,type=veth"
    source = Ct({"hostname": "web", "net0": net0, "tags": "prod"}, running=True)
    return Node({SOURCE: source, 150: Ct({"hostname": "other"})})


def scale_out(
    node: Node,
    progress: Progress,
    crash: tuple[int, str] | None = None,
    limit: int = 40,
    spec: gp.OutSpec = SPEC,
) -> tuple[Progress, gp.Finish | None]:
    """Run the plan until it finishes; `crash` = (action number, 'before'|'after')."""
    actions = 0
    running: bool | None = None
    for _ in range(limit):
        step = gp.next_out_step(
            spec, progress, node.out_facts(progress, running), expired=False, dry_run=False
        )
        if isinstance(step, gp.Finish):
            return progress, step
        if isinstance(step, gp.ReadStatus):
            assert node.where.get(step.vmid, HERE) == (step.node or HERE)
            running = node.cts[step.vmid].running
            continue
        actions += 1
        if crash == (actions, "before"):
            return progress, None
        progress = act(node, progress, step)
        running = None
        if crash == (actions, "after"):
            return progress_before_journal(progress, step), None
    raise AssertionError("the plan did not finish")


def progress_before_journal(after: Progress, step: gp.Step) -> Progress:
    """What the journal holds when the process died right after the step, before journalling it."""
    if isinstance(step, gp.Run) and step.name == gp.CLONE:
        return after.model_copy(update={"steps": after.steps[:-1]})  # clone_started was journalled first
    if isinstance(step, gp.ReserveId):
        return after.model_copy(update={"new_vmid": None, "steps": after.steps[:-1]})
    if isinstance(step, gp.ReserveIp):
        return after.model_copy(update={"ip": None, "steps": after.steps[:-1]})
    return after.model_copy(update={"steps": after.steps[:-1]}) if after.steps else after


def act(node: Node, progress: Progress, step: gp.Step) -> Progress:
    match step:
        case gp.ReserveId() | gp.Retarget():
            if isinstance(step, gp.Retarget):
                assert progress.new_vmid is not None
                progress = progress.model_copy(update={"abandoned": (*progress.abandoned, progress.new_vmid)})
            candidate = 200
            while candidate in node.ids or candidate in node.cts:
                candidate += 1
            node.ids.add(candidate)
            return progress.model_copy(update={"new_vmid": candidate, "clone_started": False}).did(
                gp.RESERVE_ID
            )
        case gp.ReserveIp():
            in_use = {str(a) for ct in node.cts.values() for a in parse_ct(ct.text()).addresses}
            free = next(ip for ip in POOL if ip not in node.ips and ip.split("/")[0] not in in_use)
            node.ips.add(free)
            return progress.model_copy(update={"ip": free}).did(gp.RESERVE_IP)
        case gp.ReleaseIp():
            assert progress.ip is not None
            node.ips.discard(progress.ip)
            return progress.did(gp.RELEASE_IP) if progress.failure is None else progress.tried(gp.RELEASE_IP)
        case gp.Record(vmid, add, where):
            if add:
                node.members[vmid] = where or HERE
            else:
                node.members.pop(vmid, None)
            return progress.did(gp.RECORD) if progress.failure is None else progress.tried(gp.RECORD)
        case gp.Run(name, op):
            if name == gp.CLONE:
                progress = progress.model_copy(update={"clone_started": True})
            if progress.failure is not None:
                node.run(op)
                return progress.tried(name)
            if not node.run(op):
                return progress.model_copy(update={"failure": StepFailure(step=name, code="command-failed")})
            return progress.did(name)
    raise AssertionError(f"unexpected step {step}")


def clones(node: Node) -> list[int]:
    return [vmid for vmid in node.cts if vmid not in (SOURCE, 150)]


def test_a_scale_out_ends_with_one_tagged_started_clone_and_no_snapshot() -> None:
    node = fresh_node()
    progress, finish = scale_out(node, Progress())
    assert finish is not None and (finish.outcome, finish.detail) == ("applied", "scaled-out")
    assert progress.steps == (
        "reserve-id", "reserve-ip", "snapshot", "clone", "tags", "net0", "delete-snapshot", "start",
        "record-membership",
    )  # fmt: skip
    (new,) = clones(node)
    ct = parse_ct(node.cts[new].text())
    assert node.cts[new].running and TAG in ct.tags and "prod" in ct.tags
    assert ct.nets["net0"] == {"name": "eth0", "bridge": "vmbr0", "hwaddr": f"BC:24:11:00:00:{new % 100:02d}",
                               "ip": "10.0.0.10/24", "gw": "10.0.0.1", "type": "veth"}  # fmt: skip
    assert node.cts[SOURCE].snapshots == set() and node.members == {new: HERE}


ACTIONS = 9  # reserve-id .. record-membership


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("action", range(1, ACTIONS + 1))
def test_a_crash_at_any_step_resumes_to_exactly_one_clone(action: int, when: str) -> None:
    node = fresh_node()
    journal, finish = scale_out(node, Progress(), crash=(action, when))
    assert finish is None
    _, finish = scale_out(node, journal)
    assert finish is not None and finish.outcome == "applied", finish
    (new,) = clones(node)  # never a second clone, never an orphan
    assert node.cts[new].running and TAG in parse_ct(node.cts[new].text()).tags
    assert node.cts[SOURCE].snapshots == set() and node.members == {new: HERE}
    assert node.commands.count("Clone") == 1


@pytest.mark.parametrize("failing", ["Snapshot", "Clone", "SetTags", "SetNet", "Start"])
def test_a_step_that_fails_for_good_leaves_no_snapshot_and_no_untagged_clone(failing: str) -> None:
    node = fresh_node()
    node.fail = failing
    _, finish = scale_out(node, Progress())
    assert finish is not None and finish.outcome == "failed" and finish.detail == "command-failed"
    assert node.cts[SOURCE].snapshots == set()
    for vmid in clones(node):  # a clone that exists is tagged, a member, and said to be kept
        assert TAG in parse_ct(node.cts[vmid].text()).tags or failing == "SetTags"
        assert vmid in node.members and "kept" in finish.message
    if not clones(node):
        assert node.ips == set()  # the address went back to the pool


def test_an_id_taken_behind_our_back_is_abandoned_never_reused() -> None:
    node = fresh_node()
    journal, _ = scale_out(node, Progress(), crash=(1, "after"))  # reserved 200, not journalled
    journal, _ = scale_out(node, Progress(), crash=(2, "before"))  # reserved and journalled 201
    assert journal.new_vmid == 201
    node.cts[201] = Ct({"hostname": "someone-else"})  # made by hand before our clone ran
    progress, finish = scale_out(node, journal)
    assert finish is not None and finish.outcome == "applied"
    assert progress.abandoned == (201,) and progress.new_vmid == 202 and node.ids >= {200, 201, 202}


def test_a_locked_clone_is_waited_for_then_reported() -> None:
    progress = Progress(new_vmid=200, ip="10.0.0.10/24", clone_started=True, steps=("reserve-id",))
    locked = parse_ct("lock: create\nhostname: web-200\n")
    facts = gp.OutFacts(source=parse_ct("hostname: web\n"), clone=locked, recorded=False)
    assert isinstance(gp.next_out_step(SPEC, progress, facts, expired=True, dry_run=False), gp.Wait)
    late = gp.OutFacts(source=facts.source, clone=locked, recorded=False, waited_s=60)
    step = gp.next_out_step(SPEC, progress, late, expired=False, dry_run=False)
    assert isinstance(step, gp.Finish) and step.detail == "clone-incomplete"


@pytest.mark.parametrize(
    ("expired", "dry_run", "detail"),
    [(True, False, "expired"), (False, True, "dry-run")],
    ids=["expired", "dry-run"],
)
def test_nothing_is_done_for_an_expired_or_dry_run_intent_but_a_started_one_resumes(
    expired: bool, dry_run: bool, detail: str
) -> None:
    facts = gp.OutFacts(source=parse_ct("hostname: web\n"), clone=None, recorded=False)
    step = gp.next_out_step(SPEC, Progress(), facts, expired=expired, dry_run=dry_run)
    assert isinstance(step, gp.Finish) and (step.outcome, step.detail) == ("skipped", detail)
    started = Progress(new_vmid=200, ip="10.0.0.10/24", steps=("reserve-id", "reserve-ip"))
    step = gp.next_out_step(SPEC, started, facts, expired=expired, dry_run=dry_run)
    assert isinstance(step, gp.Run) and step.name == "snapshot"


IN_SPEC = gp.InSpec(member_vmid=200, tag=TAG, destroy=False, protected=frozenset({SOURCE}))


def scale_in(node: Node, spec: gp.InSpec, progress: Progress | None = None) -> tuple[Progress, gp.Finish]:
    running: bool | None = None
    progress = progress or Progress()
    for _ in range(20):
        view = node.view(spec.member_vmid)
        facts = gp.InFacts(member=view, recorded=spec.member_vmid in node.members, running=running)
        step = gp.next_in_step(spec, progress, facts, expired=False, dry_run=False)
        if isinstance(step, gp.Finish):
            return progress, step
        if isinstance(step, gp.ReadStatus):
            running = node.cts[step.vmid].running
            continue
        if isinstance(step, gp.Run) and step.name == gp.DESTROY and view is not None:
            progress = progress.model_copy(update={"ip": view.nets["net0"]["ip"]})  # as the applier does
        progress, running = act(node, progress, step), None
    raise AssertionError("the plan did not finish")


@pytest.mark.parametrize("destroy", [False, True], ids=["stop", "destroy"])
def test_scale_in_stops_or_destroys_the_member_and_forgets_it(destroy: bool) -> None:
    node = fresh_node()
    scale_out(node, Progress())
    spec = gp.InSpec(member_vmid=200, tag=TAG, destroy=destroy, protected=frozenset({SOURCE}))
    progress, finish = scale_in(node, spec)
    assert (finish.outcome, finish.detail) == ("applied", "scaled-in")
    assert progress.steps == (("stop", "destroy", "release-ip") if destroy else ("stop",)) + (
        "record-membership",
    )
    assert node.members == {}
    assert (200 not in node.cts) if destroy else (not node.cts[200].running)
    assert node.ips == (set() if destroy else {"10.0.0.10/24"})  # a stopped clone keeps its address
    scale_out(node, Progress())
    assert max(clones(node)) == 201  # the next clone never reuses the id


def test_a_least_loaded_scale_out_clones_onto_the_target_and_finishes_the_clone_there() -> None:
    node = fresh_node()
    progress, finish = scale_out(node, Progress(), spec=SPEC_THERE)
    assert finish is not None and (finish.outcome, finish.detail) == ("applied", "scaled-out"), finish
    assert progress.steps == (
        "reserve-id", "reserve-ip", "snapshot", "clone", "tags", "net0", "delete-snapshot", "start",
        "record-membership",
    )  # fmt: skip
    (new,) = clones(node)
    assert node.where[new] == THERE and node.members == {new: THERE} and f"on {THERE}" in finish.message
    # the snapshot and the clone run here; every step on the clone goes through pvesh to its node
    assert node.commands == [
        "Snapshot", "Clone", f"SetTags@{THERE}", f"SetNet@{THERE}", "DeleteSnapshot", f"Start@{THERE}",
    ]  # fmt: skip
    assert node.cts[new].running and TAG in parse_ct(node.cts[new].text()).tags


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("action", range(1, ACTIONS + 1))
def test_a_crash_at_any_step_of_a_cross_node_scale_out_resumes_on_the_target(action: int, when: str) -> None:
    node = fresh_node()
    journal, finish = scale_out(node, Progress(), crash=(action, when), spec=SPEC_THERE)
    assert finish is None
    _, finish = scale_out(node, journal, spec=SPEC_THERE)
    assert finish is not None and finish.outcome == "applied", finish
    (new,) = clones(node)
    assert node.where[new] == THERE and node.cts[new].running and node.members == {new: THERE}
    assert node.cts[SOURCE].snapshots == set() and node.commands.count("Clone") == 1


def test_a_cross_node_clone_still_copying_is_waited_for_on_the_source_node() -> None:
    """While `pct clone --target` copies, the new config is on this node, `lock: create`."""
    progress = Progress(new_vmid=200, ip="10.0.0.10/24", clone_started=True, steps=("reserve-id",))
    source = parse_ct("hostname: web\n\n[autoscale-0123456789abcdef]\ncores: 2\n")
    copying = gp.OutFacts(source=source, clone=parse_ct("lock: create\nhostname: web-200\n"), recorded=False)
    assert isinstance(gp.next_out_step(SPEC_THERE, progress, copying, expired=False, dry_run=False), gp.Wait)
    clone = parse_ct("hostname: web-200\n")
    moved = gp.OutFacts(source=source, clone=clone, recorded=False, clone_node=THERE)
    step = gp.next_out_step(SPEC_THERE, progress, moved, expired=False, dry_run=False)
    assert step == gp.Run(gp.TAGS, gc.on_node(THERE, gc.set_tags(200, (TAG,))))
    failed = progress.model_copy(update={"failure": StepFailure(step="start", code="locked")})
    step = gp.next_out_step(SPEC_THERE, failed, moved, expired=False, dry_run=False)
    assert step == gp.Run(gp.TAGS, gc.on_node(THERE, gc.set_tags(200, (TAG,))))  # the cleanup too


def test_a_cross_node_clone_that_fails_leaves_no_snapshot_and_gives_the_address_back() -> None:
    node = fresh_node()
    node.fail = "Clone"  # Proxmox: "can't clone CT to node 'pve2' (CT uses local storage)"
    _, finish = scale_out(node, Progress(), spec=SPEC_THERE)
    assert finish is not None and finish.outcome == "failed" and finish.message.startswith("clone failed")
    assert clones(node) == [] and node.cts[SOURCE].snapshots == set() and node.ips == set()


def test_scale_in_never_touches_the_source_or_an_untagged_container() -> None:
    node = fresh_node()
    _, finish = scale_in(
        node, gp.InSpec(member_vmid=SOURCE, tag=TAG, destroy=True, protected=frozenset({SOURCE}))
    )
    assert (finish.outcome, finish.detail) == ("rejected", "not-a-clone")
    _, finish = scale_in(node, gp.InSpec(member_vmid=150, tag=TAG, destroy=True))
    assert (finish.outcome, finish.detail) == ("rejected", "not-a-clone")
    assert node.commands == [] and SOURCE in node.cts and 150 in node.cts


def test_destroy_cannot_even_be_built_without_allow_destroy() -> None:
    with pytest.raises(CommandRefused) as refused:
        gc.destroy(200, allow_destroy=False)
    assert refused.value.code == "destroy-not-allowed"
