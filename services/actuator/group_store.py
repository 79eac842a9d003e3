"""KV access for group operations: their journal, id and address reservations, membership.

The journal of one group intent lives in the actuator's bucket (`<node>.groups.<intent
id>`, under the node's own keys); reservations and membership live in the groups bucket,
shared by every node's actuator: ids and addresses are taken with `create` (only one
writer can create a key), the membership record is updated with compare-and-set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from pydantic import BaseModel, ConfigDict, ValidationError

from services.actuator.group_records import Progress
from shared import subjects
from shared.groups import ActionOutcome, IdReservation, IpReservation, MembershipRecord
from shared.models import GroupIntent, ScaleEvent
from shared.validation import check_node_name, sanitize

log = logging.getLogger(__name__)
CAS_ATTEMPTS = 20  # membership updates racing other actuators; each retry re-reads


class GroupJournal(BaseModel):
    """One group intent's journal: its progress, then its decided event (stored before it
    is published, so a redelivery republishes it instead of deciding again)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intent: GroupIntent
    progress: Progress = Progress()
    outcome: ScaleEvent | None = None
    published: bool = False


class GroupStore:
    def __init__(self, journal: Any, groups: Any) -> None:
        self._journal = journal
        self._groups = groups

    @classmethod
    async def open(cls, js: Any) -> GroupStore:
        return cls(await js.key_value(subjects.ACTUATOR_BUCKET), await js.key_value(subjects.GROUPS_BUCKET))

    # ---------------------------------------------------------------- journal

    async def journal(self, node: str, intent_id: str) -> GroupJournal | None:
        raw = await _get(self._journal, _journal_key(node, intent_id))
        if raw is None:
            return None
        try:
            return GroupJournal.model_validate_json(raw)
        except ValidationError as exc:
            # An unreadable journal proves nothing: start over; reservations are by intent
            # id, so the same id and address are found again.
            log.error("unreadable group journal ignored", extra={"event": "journal_unreadable",
                      "intent_id": intent_id, "error": str(exc)[:300]})  # fmt: skip
            return None

    async def write_journal(self, node: str, record: GroupJournal) -> None:
        await self._journal.put(
            _journal_key(node, record.intent.intent_id), record.model_dump_json().encode()
        )

    # ---------------------------------------------------------------- reservations

    async def reserve_id(self, reservation: IdReservation) -> bool:
        """Take `ids.<vmid>`; True also when this intent took it before (a resumed reserve)."""
        return await self._create_or_own(
            subjects.group_id_key(reservation.vmid), reservation.to_bytes(), reservation.intent_id,
            IdReservation.from_bytes,
        )  # fmt: skip

    async def id_taken(self, vmid: int, intent_id: str) -> bool:
        """Reserved by another intent (ours is not "taken": a resumed reserve finds it)."""
        raw = await _get(self._groups, subjects.group_id_key(vmid))
        if raw is None:
            return False
        try:
            return IdReservation.from_bytes(raw).intent_id != intent_id
        except ValidationError:
            return True  # unreadable: never reuse it

    async def reserve_ip(self, reservation: IpReservation) -> bool:
        return await self._create_or_own(
            subjects.group_ip_key(reservation.group, reservation.ip), reservation.to_bytes(),
            reservation.intent_id, IpReservation.from_bytes,
        )  # fmt: skip

    async def ip_reserved(self, group: str, ip: str) -> bool:
        return await _get(self._groups, subjects.group_ip_key(group, ip)) is not None

    async def release_ip(self, group: str, ip: str) -> None:
        await self._groups.delete(subjects.group_ip_key(group, ip))

    async def _create_or_own(
        self, key: str, value: bytes, intent_id: str, parse: Callable[[bytes], IdReservation | IpReservation]
    ) -> bool:
        try:
            await self._groups.create(key, value)
            return True
        except KeyWrongLastSequenceError:
            raw = await _get(self._groups, key)
            if raw is None:
                return False  # deleted (a released address): taken once, let a later pass retry
            try:
                return parse(raw).intent_id == intent_id
            except ValidationError:
                return False

    # ---------------------------------------------------------------- outcomes

    async def report_outcome(self, node: str, event: ScaleEvent) -> None:
        """`outcome.<node>.<group>`: the terminal event of a group intent, for the deciders
        (a failed or rejected action ends the group's pending action at once). Best effort:
        the event is out already; without this record the deciders end the action only at
        `action_timeout_s` (docs/horizontal.md, "When an action fails")."""
        if event.group is None:
            return
        try:
            outcome = ActionOutcome(
                group=event.group.name, node=node, intent_id=event.intent_id, action=event.group.action,
                outcome=event.outcome, detail=event.detail, occurred_at=event.occurred_at,
            )  # fmt: skip
            await self._groups.put(subjects.group_outcome_key(node, event.group.name), outcome.to_bytes())
        except Exception as exc:
            log.warning("group outcome not recorded: %s", sanitize(exc, 300), extra={
                "event": "group_outcome_unrecorded", "intent_id": event.intent_id})  # fmt: skip

    # ---------------------------------------------------------------- membership

    async def members(self, group: str) -> MembershipRecord | None:
        raw = await _get(self._groups, subjects.group_members_key(group))
        return MembershipRecord.from_bytes(raw) if raw is not None else None

    async def update_members(
        self, group: str, change: Callable[[MembershipRecord | None], MembershipRecord]
    ) -> MembershipRecord:
        """Apply `change` with compare-and-set, re-reading after every lost race."""
        key = subjects.group_members_key(group)
        for _ in range(CAS_ATTEMPTS):
            try:
                entry = await self._groups.get(key)
            except NotFoundError:
                entry = None
            current = MembershipRecord.from_bytes(entry.value) if entry is not None and entry.value else None
            updated = change(current)
            try:
                if entry is None:
                    await self._groups.create(key, updated.to_bytes())
                else:
                    await self._groups.update(key, updated.to_bytes(), last=entry.revision)
                return updated
            except KeyWrongLastSequenceError:
                continue
        raise RuntimeError(f"membership of group {group} changed {CAS_ATTEMPTS} times while updating it")


def _journal_key(node: str, intent_id: str) -> str:
    # intent ids are 32 hex digits (validated): a safe KV key token
    return f"{check_node_name(node)}.groups.{intent_id}"


async def _get(kv: Any, key: str) -> bytes | None:
    try:
        entry = await kv.get(key)
    except NotFoundError:
        return None
    value: bytes | None = entry.value
    return value or None
