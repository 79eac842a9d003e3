"""Take one group intent to its terminal event: read the node, ask the plan, do the step,
journal it, repeat. The decisions are in group_plan.py (pure); this module only reads
and writes, in the order docs/actuator.md ("Group operations") explains.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from ipaddress import IPv4Address

from services.actuator import group_commands as gc
from services.actuator import group_plan as gp
from services.actuator.applier import DECIDE_WITHIN_S, Fence
from services.actuator.commands import Start
from services.actuator.ct_view import CtView, ip_of
from services.actuator.event_builder import group_event
from services.actuator.execution import OnRetry, retry_attempts
from services.actuator.executors.base import Executor
from services.actuator.group_records import Progress, StepFailure
from services.actuator.group_specs import in_spec, out_spec, screen
from services.actuator.group_store import GroupJournal, GroupStore
from services.actuator.ip_pool import PoolAddress, parse_pool, pick
from services.actuator.node_reader import NodeReader, ReadRefused
from services.actuator.publisher import EventPublisher
from services.actuator.pvesh_result import task_result
from services.actuator.result import CommandResult
from services.actuator.retry import COMMAND_OVERRUN_S, ResultKind, RetryPolicy
from shared import failpoints
from shared.clock import Clock
from shared.config import Defaults, HorizontalGroup
from shared.groups import IdReservation, IpReservation, Member, MembershipRecord
from shared.models import GroupIntent

log = logging.getLogger(__name__)
MAX_STEPS = 64  # a scale-out takes about ten; more means the node keeps undoing our steps
MAX_ID_PROBES = 10_000


@dataclass(frozen=True)
class GroupSettings:
    node: str
    pct_path: str
    policy: RetryPolicy
    groups: Mapping[str, HorizontalGroup]
    defaults: Defaults
    other_nodes: tuple[str, ...] = ()  # nodes whose conf dirs are checked for a new id
    pvesh_path: str = "/usr/bin/pvesh"  # steps on a clone of another node (proxied by Proxmox)
    lease_s: float = 60.0  # the node lease's length: no step can be fenced for longer
    wait_poll_s: float = 1.0


class GroupApplier:
    def __init__(
        self,
        *,
        settings: GroupSettings,
        executor: Executor,
        reader: NodeReader,
        store: GroupStore,
        publisher: EventPublisher,
        clock: Clock,
        fence: Fence,
    ) -> None:
        self._settings = settings
        self._fence = fence
        self._executor = executor
        self._reader = reader
        self._store = store
        self._publisher = publisher
        self._clock = clock

    async def process(self, intent: GroupIntent, on_retry: OnRetry) -> GroupJournal:
        """The intent's journal with its decided event (decided now, or before a crash)."""
        node = self._settings.node
        record = await self._store.journal(node, intent.intent_id) if intent.node == node else None
        record = record or GroupJournal(intent=intent)
        if record.outcome is not None:
            return record
        received = self._clock.now()
        group = self._settings.groups.get(intent.group)
        finish = screen(intent, group, node)
        if finish is None:
            assert group is not None
            run = _Run(self, intent, group, record, on_retry)
            finish = await (run.scale_out() if intent.action == "scale-out" else run.scale_in())
            record = run.record
        return self._decide(record, finish, received)

    async def failed(self, intent: GroupIntent, text: str) -> GroupJournal:
        """An unexpected error ends the intent: its journal (the steps so far) and a
        `failed`/`internal-error` event, unless an event was decided already."""
        record = (
            await self._store.journal(self._settings.node, intent.intent_id)
            if intent.node == self._settings.node
            else None
        )
        record = record or GroupJournal(intent=intent)
        if record.outcome is not None:
            return record
        return self._decide(record, gp.Finish("failed", "internal-error", text), self._clock.now())

    async def finish(self, record: GroupJournal, acknowledge: Callable[[], Awaitable[None]]) -> None:
        """Store the decided event, publish it, ack; each step survives a crash after it."""
        assert record.outcome is not None
        if not record.published:
            if record.intent.node == self._settings.node:
                await self._fence.ensure(DECIDE_WITHIN_S)
                await self._store.write_journal(self._settings.node, record)
            await failpoints.reach("actuator.after-decide")
            await self._publisher.publish(record.outcome)
            await failpoints.reach("actuator.after-publish")
            await self._store.report_outcome(self._settings.node, record.outcome)
            if record.intent.node == self._settings.node:
                await self._store.write_journal(
                    self._settings.node, record.model_copy(update={"published": True})
                )
        await acknowledge()
        await failpoints.reach("actuator.after-ack")

    def _decide(self, record: GroupJournal, finish: gp.Finish, received: datetime) -> GroupJournal:
        now, progress = self._clock.now(), record.progress
        event = group_event(
            record.intent, finish.outcome, finish.detail, occurred_at=now, message=finish.message,
            steps=progress.steps, new_vmid=progress.new_vmid, ip=progress.ip,
            attempts=len(progress.steps), duration_ms=(now - received).total_seconds() * 1000,
        )  # fmt: skip
        return record.model_copy(update={"outcome": event})


class _Run:
    """One pass over one group intent: the loop, and how each step is done."""

    def __init__(
        self, applier: GroupApplier, intent: GroupIntent, group: HorizontalGroup, record: GroupJournal,
        on_retry: OnRetry,
    ) -> None:  # fmt: skip
        self.a = applier
        self.s = applier._settings
        self.intent = intent
        self.group = group
        self.record = record
        self.on_retry = on_retry
        self.dry_run = intent.dry_run or group.is_dry_run(self.s.defaults)

    @property
    def progress(self) -> Progress:
        return self.record.progress

    def expired(self) -> bool:
        return self.a._clock.now() >= self.intent.expires_at

    async def scale_out(self) -> gp.Finish:
        spec = out_spec(self.intent, self.group, self.group.clone_timeout(self.s.defaults), self.s.node)
        running: bool | None = None
        waited_since: float | None = None
        actions = 0
        while actions < MAX_STEPS:
            new = self.progress.new_vmid
            waited = 0.0 if waited_since is None else self.a._clock.monotonic() - waited_since
            where, clone = await self._find_clone(new, spec.target)
            facts = gp.OutFacts(
                source=await self.a._reader.config(self.s.node, spec.source_vmid), clone=clone,
                recorded=await self._recorded(new), clone_running=running, waited_s=waited,
                clone_node=None if where == self.s.node else where,
            )  # fmt: skip
            step = gp.next_out_step(spec, self.progress, facts, expired=self.expired(), dry_run=self.dry_run)
            if isinstance(step, gp.Finish):
                return step
            if isinstance(step, gp.ReadStatus):
                running = await self.a._reader.running(step.vmid, self.on_retry, step.node)
                continue
            if isinstance(step, gp.Wait):
                waited_since = self.a._clock.monotonic() if waited_since is None else waited_since
                await asyncio.sleep(self.s.wait_poll_s)
                continue
            running, waited_since, actions = None, None, actions + 1
            await self._act(step)
        raise RuntimeError(f"scale-out of group {self.intent.group} did not settle in {MAX_STEPS} steps")

    async def scale_in(self) -> gp.Finish:
        spec = in_spec(self.intent, self.group)
        running: bool | None = None
        for _ in range(MAX_STEPS):
            facts = gp.InFacts(
                member=await self.a._reader.config(self.s.node, spec.member_vmid),
                recorded=await self._recorded(spec.member_vmid), running=running,
            )  # fmt: skip
            step = gp.next_in_step(spec, self.progress, facts, expired=self.expired(), dry_run=self.dry_run)
            if isinstance(step, gp.Finish):
                return step
            if isinstance(step, gp.ReadStatus):
                running = await self.a._reader.running(step.vmid, self.on_retry)
                continue
            if isinstance(step, gp.Run) and step.name == gp.DESTROY and facts.member is not None:
                await self._journal(self.progress.model_copy(update={"ip": _address(facts.member)}))
            running = None
            await self._act(step)
        raise RuntimeError(f"scale-in of group {self.intent.group} did not settle in {MAX_STEPS} steps")

    # ---------------------------------------------------------------- steps

    async def _act(self, step: gp.Step) -> None:
        """Do one step, then journal what it did (a crash in between redoes or re-finds it).

        Only while this process holds the node's lease (docs/actuator.md, "Two actuators
        for one node"): long enough for a KV write, or for a command's timeout."""
        await self._fence(self._step_s(step))
        match step:
            case gp.ReserveId() | gp.Retarget():
                name, progress = gp.RESERVE_ID, await self._reserve_id(isinstance(step, gp.Retarget))
            case gp.ReserveIp():
                name, progress = gp.RESERVE_IP, await self._reserve_ip()
            case gp.ReleaseIp():
                assert self.progress.ip is not None
                await self.a._store.release_ip(self.intent.group, self.progress.ip)
                name, progress = gp.RELEASE_IP, self._done(gp.RELEASE_IP)
            case gp.Record(vmid, add, node):
                await self._record(vmid, add, node or self.s.node)
                name, progress = gp.RECORD, self._done(gp.RECORD)
            case gp.Run():
                name, progress = step.name, await self._run(step)
            case _:
                raise RuntimeError(f"unexpected step {step}")
        await _reached(name)
        await self._journal(progress)
        log.info("group step done", extra={"event": "group_step", "step": name, "group": self.intent.group,
                 "intent_id": self.intent.intent_id, "vmid": progress.new_vmid or self.intent.vmid,
                 "failed": progress.failure is not None})  # fmt: skip

    def _step_s(self, step: gp.Step) -> float:
        if not isinstance(step, gp.Run):
            return DECIDE_WITHIN_S
        timeout = self.group.clone_timeout(self.s.defaults) if step.slow else self.s.policy.command_timeout_s
        return timeout + COMMAND_OVERRUN_S

    async def _fence(self, within_s: float) -> None:
        # A clone may last longer than a lease: fence its start; a process that lost the
        # lease meanwhile stops at its next step, and the new holder finds the clone's
        # `lock: create` and waits for it (no second clone).
        await self.a._fence.ensure(min(within_s, self.s.lease_s - COMMAND_OVERRUN_S))

    def _done(self, name: str) -> Progress:
        """A step that succeeded, or a cleanup step tried (a failure is being reported)."""
        return self.progress.did(name) if self.progress.failure is None else self.progress.tried(name)

    def _failed(self, name: str, code: str, message: str) -> Progress:
        if self.progress.failure is not None:
            return self.progress.tried(name)
        return self.progress.model_copy(
            update={"failure": StepFailure(step=name, code=code, message=message)}
        )

    async def _run(self, step: gp.Run) -> Progress:
        if step.name == gp.CLONE:
            # Before pct runs: a config on our id is then known to be ours (docs: Retarget).
            await self._journal(self.progress.model_copy(update={"clone_started": True}))
        policy = self.s.policy
        if step.slow:
            policy = replace(policy, command_timeout_s=self.group.clone_timeout(self.s.defaults))
        argv = gc.group_argv(step.operation, self.s.pct_path, self.s.pvesh_path)
        within_s = self._step_s(step)
        # `pvesh create …/status/start` exits 0 for a failed task (pvesh_result.py).
        operation = step.operation
        foreground_task = isinstance(operation, gc.OnNode) and isinstance(operation.operation, Start)

        async def attempt() -> CommandResult:
            await self._fence(within_s)
            result = await self.a._executor.run(argv, policy.command_timeout_s)
            return task_result(result) if foreground_task else result

        done = await retry_attempts(attempt, argv[1], policy, on_retry=self.on_retry)
        if done.classification.kind is ResultKind.OK:
            return self._done(step.name)
        return self._failed(step.name, done.classification.code, done.classification.message)

    async def _reserve_id(self, retarget: bool) -> Progress:
        progress = self.progress
        if retarget and progress.new_vmid is not None:
            progress = progress.model_copy(update={"abandoned": (*progress.abandoned, progress.new_vmid)})
        self.record = self.record.model_copy(update={"progress": progress})
        nodes = (self.s.node, *self.s.other_nodes)
        candidate = self.group.starting_clone_id
        for _ in range(MAX_ID_PROBES):
            try:
                free = candidate not in progress.abandoned and await self._id_free(candidate, nodes)
            except ReadRefused as exc:
                return self._failed(gp.RESERVE_ID, exc.code, str(exc))
            if free:
                reservation = IdReservation(
                    vmid=candidate, group=self.intent.group, node=self.s.node,
                    intent_id=self.intent.intent_id, reserved_at=self.a._clock.now(),
                )  # fmt: skip
                if await self.a._store.reserve_id(reservation):
                    update = {"new_vmid": candidate, "clone_started": False}
                    return progress.model_copy(update=update).did(gp.RESERVE_ID)
            candidate += 1
        return self._failed(gp.RESERVE_ID, "no-free-id", f"no free id in {MAX_ID_PROBES} from the start")

    async def _id_free(self, vmid: int, nodes: tuple[str, ...]) -> bool:
        """Not reserved by another intent, no config on any node, and Proxmox agrees."""
        if await self.a._store.id_taken(vmid, self.intent.intent_id):
            return False
        if await self.a._reader.exists_anywhere(vmid, nodes):
            return False
        return await self.a._reader.id_free(vmid, self.on_retry)

    async def _reserve_ip(self) -> Progress:
        pool = parse_pool(str(entry) for entry in self.group.static_ip_range)
        in_use = await self._addresses_in_use()
        new = self.progress.new_vmid
        assert new is not None  # the id is reserved first
        lost: set[PoolAddress] = set()
        while (chosen := pick(pool, in_use, (), skip={a.address for a in lost})) is not None:
            reservation = IpReservation(
                group=self.intent.group, ip=str(chosen.address), vmid=new,
                intent_id=self.intent.intent_id, reserved_at=self.a._clock.now(),
            )  # fmt: skip
            if not await self._reserved_elsewhere(chosen) and await self.a._store.reserve_ip(reservation):
                return self.progress.model_copy(update={"ip": chosen.cidr}).did(gp.RESERVE_IP)
            lost.add(chosen)
        return self._failed(gp.RESERVE_IP, "pool-exhausted", f"every address of group {self.intent.group}'s "
                            "static_ip_range is in use or reserved")  # fmt: skip

    async def _addresses_in_use(self) -> set[IPv4Address]:
        """Every address in a net<N> line of any group's members (recorded, the sources and
        those listed by hand): pools of two groups may overlap, a LAN has one address space."""
        where: dict[int, str] = {}
        for name, group in self.s.groups.items():
            for vmid in (group.source_vmid, *group.lxc_containers):
                where.setdefault(vmid, self.s.node)
            record = await self.a._store.members(name)
            for member in record.members if record is not None else ():
                where[member.vmid] = member.node
        in_use: set[IPv4Address] = set()
        for vmid, node in sorted(where.items()):
            view = await self.a._reader.config(node, vmid)
            in_use |= view.addresses if view is not None else set()
        return in_use

    async def _reserved_elsewhere(self, address: PoolAddress) -> bool:
        """Reserved under another group's key (overlapping pools); ours is `create`d next."""
        for name in self.s.groups:
            if name != self.intent.group and await self.a._store.ip_reserved(name, str(address.address)):
                return True
        return False

    async def _find_clone(self, new: int | None, target: str | None) -> tuple[str | None, CtView | None]:
        """Where our clone's config is and what it says: on the target node once Proxmox
        moved it there, on this node while `pct clone --target` still copies."""
        if new is None:
            return None, None
        nodes = (self.s.node,) if target is None else (target, self.s.node)
        found = await self.a._reader.find(new, nodes)
        return found if found is not None else (None, None)

    async def _record(self, vmid: int, add: bool, node: str) -> None:
        now, intent = self.a._clock.now(), self.intent

        def change(current: MembershipRecord | None) -> MembershipRecord:
            members = tuple(m for m in (current.members if current else ()) if m.vmid != vmid)
            if add:
                member = Member(
                    vmid=vmid, node=node, created=True, created_at=now, intent_id=intent.intent_id
                )
                members = (*members, member)
            return MembershipRecord(group=intent.group, members=members, updated_at=now)

        await self.a._store.update_members(intent.group, change)

    async def _recorded(self, vmid: int | None) -> bool:
        if vmid is None:
            return False
        record = await self.a._store.members(self.intent.group)
        return record is not None and any(m.vmid == vmid for m in record.members)

    async def _journal(self, progress: Progress) -> None:
        self.record = self.record.model_copy(update={"progress": progress})
        await self.a._store.write_journal(self.s.node, self.record)


def _address(member: CtView) -> str | None:
    """The static address of a member's net0 (`a.b.c.d/p`), None for dhcp."""
    ip = member.nets.get("net0", {}).get("ip", "")
    return ip if ip_of(ip) is not None else None


async def _reached(step: str) -> None:
    """A failpoint after each step ran and before it is journalled (tests kill here)."""
    match step:
        case gp.RESERVE_ID:
            await failpoints.reach("group.after-reserve-id")
        case gp.RESERVE_IP:
            await failpoints.reach("group.after-reserve-ip")
        case gp.SNAPSHOT:
            await failpoints.reach("group.after-snapshot")
        case gp.CLONE:
            await failpoints.reach("group.after-clone")
        case gp.TAGS:
            await failpoints.reach("group.after-tags")
        case gp.NET:
            await failpoints.reach("group.after-net0")
        case gp.DELETE_SNAPSHOT:
            await failpoints.reach("group.after-delete-snapshot")
        case gp.START:
            await failpoints.reach("group.after-start")
        case gp.STOP:
            await failpoints.reach("group.after-stop")
        case gp.RECORD:
            await failpoints.reach("group.after-record-membership")
