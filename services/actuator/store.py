"""KV access for the actuator: original sizes (rollback), the in-flight journal, outcomes."""

from __future__ import annotations

import contextlib
import logging
from typing import Any, TypeVar

from nats.js.errors import KeyWrongLastSequenceError, NoKeysError, NotFoundError
from pydantic import ValidationError

from services.actuator.records import BackupRecord, JournalEntry, OutcomeRecord
from shared import subjects

log = logging.getLogger(__name__)
R = TypeVar("R", JournalEntry, OutcomeRecord)


class ActuatorStore:
    def __init__(self, backups: Any, journal: Any) -> None:
        self._backups = backups
        self._journal = journal

    @classmethod
    async def open(cls, js: Any) -> ActuatorStore:
        return cls(await js.key_value(subjects.BACKUP_BUCKET), await js.key_value(subjects.ACTUATOR_BUCKET))

    async def journal(self, node: str, vmid: int) -> JournalEntry | None:
        return await self._record(subjects.state_key(node, vmid), JournalEntry)

    async def write_journal(self, node: str, vmid: int, entry: JournalEntry) -> None:
        await self._journal.put(subjects.state_key(node, vmid), entry.model_dump_json().encode())

    async def clear_journal(self, node: str, vmid: int, intent_id: str) -> None:
        """Delete the container's in-flight entry if it is still `intent_id`'s: compare-and-set
        on its revision, so a late actuator never drops a newer intent's entry."""
        key = subjects.state_key(node, vmid)
        try:
            entry = await self._journal.get(key)
        except NotFoundError:
            return
        try:
            current = JournalEntry.model_validate_json(entry.value or b"")
        except ValidationError:
            current = None  # garbage proves nothing: it goes, as before
        if current is not None and current.intent.intent_id != intent_id:
            return
        with contextlib.suppress(KeyWrongLastSequenceError):  # replaced meanwhile: not ours
            await self._journal.delete(key, last=entry.revision)

    async def outcome(self, node: str, vmid: int, intent_id: str) -> OutcomeRecord | None:
        return await self._record(_outcome_key(node, vmid, intent_id), OutcomeRecord)

    async def _record(self, key: str, model: type[R]) -> R | None:
        raw = await _get(self._journal, key)
        if raw is None:
            return None
        try:
            return model.model_validate_json(raw)
        except ValidationError as exc:
            # An unreadable record cannot prove anything; ignoring it means a redelivery
            # re-checks the container instead of trusting garbage.
            log.error(
                "unreadable journal record ignored",
                extra={"event": "journal_unreadable", "key": key, "error": str(exc)[:300]},
            )
            return None

    async def decide(self, record: OutcomeRecord) -> OutcomeRecord:
        """Store an intent's outcome unless one is stored already (`create`, compare-and-set
        on "no such key"), and return the outcome that stands: the first decision wins,
        whichever actuator process made it."""
        event = record.event
        key = _outcome_key(event.node, event.vmid, event.intent_id)
        try:
            await self._journal.create(key, record.model_dump_json().encode())
            return record
        except KeyWrongLastSequenceError:
            stored = await self.outcome(event.node, event.vmid, event.intent_id)
        if stored is None:  # unreadable: it proves nothing, ours replaces it
            await self.write_outcome(record)
            return record
        return stored

    async def write_outcome(self, record: OutcomeRecord) -> None:
        event = record.event
        key = _outcome_key(event.node, event.vmid, event.intent_id)
        await self._journal.put(key, record.model_dump_json().encode())

    async def save_original(self, record: BackupRecord) -> bool:
        """Keep the first size only: `create` fails if a backup already exists."""
        try:
            await self._backups.create(
                subjects.state_key(record.node, record.vmid), record.model_dump_json().encode()
            )
        except KeyWrongLastSequenceError:
            return False
        return True

    async def original(self, node: str, vmid: int) -> BackupRecord | None:
        raw = await _get(self._backups, subjects.state_key(node, vmid))
        return BackupRecord.model_validate_json(raw) if raw is not None else None

    async def originals(self, node: str | None = None) -> list[BackupRecord]:
        try:
            keys = await self._backups.keys()
        except NoKeysError:
            return []
        records = []
        for key in sorted(keys):
            if node is not None and not key.startswith(f"{node}."):
                continue
            raw = await _get(self._backups, key)
            if raw is not None:
                records.append(BackupRecord.model_validate_json(raw))
        return records


def _outcome_key(node: str, vmid: int, intent_id: str) -> str:
    # intent ids are 32 hex digits (validated), safe as a KV key token
    return f"{subjects.state_key(node, vmid)}.{intent_id}"


async def _get(kv: Any, key: str) -> bytes | None:
    try:
        entry = await kv.get(key)
    except NotFoundError:  # KeyNotFoundError and KeyDeletedError (deleted or purged keys)
        return None
    value: bytes | None = entry.value
    return value or None
