"""Authenticated control: pause, resume, roll back and switch dry-run, writing exactly
what the command line writes (the pause entries of `lxc-autoscale pause`, a rollback
intent like `lxc-autoscale rollback`, the switch of `lxc-autoscale dry-run`).

Closed by default: with no token configured every control request is refused and the
API says so. The token is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.js.errors import KeyNotFoundError, NotFoundError

from shared import subjects
from shared.codec import encode
from shared.dry_run import DRY_RUN_KEY, store_dry_run
from shared.models import DecisionReason, NodeSample, ResourceSize, ScaleIntent
from shared.pauses import PauseEntry
from shared.pauses import pause_key as stored_pause_key

ROLLBACK_TTL_S = 600.0
DISABLED = "control is disabled: no token is configured (CONSOLE.token or LXC_AUTOSCALE_CONSOLE_TOKEN)"


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Token:
    value: str | None

    @property
    def enabled(self) -> bool:
        return bool(self.value)

    def check(self, authorization: str | None) -> None:
        if not self.value:
            raise ControlError(403, DISABLED)
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), self.value.encode()):
            raise ControlError(401, "a valid bearer token is required")


def pause_key(node: Any, vmid: Any) -> str:
    if not isinstance(node, str | None) or not isinstance(vmid, int | None) or isinstance(vmid, bool):
        raise ControlError(400, "node must be a string and vmid an integer")
    try:
        return stored_pause_key(node, vmid)
    except ValueError as exc:
        raise ControlError(
            400, f"a pause is global (no node, no vmid), for a node (node) or one container (both): {exc}"
        ) from None


class Control:
    def __init__(self, js: Any) -> None:
        self._js = js

    async def pause(self, body: dict[str, Any]) -> dict[str, Any]:
        key = pause_key(body.get("node"), body.get("vmid"))
        try:
            entry = PauseEntry(
                mode=body.get("mode", "all"), until=body.get("until"), reason=body.get("reason", "")
            )
        except ValueError as exc:
            raise ControlError(400, f"invalid pause: {exc}") from None
        kv = await self._js.key_value(subjects.POLICY_BUCKET)
        await kv.put(key, entry.model_dump_json().encode())
        return {"key": key, "paused": entry.model_dump(mode="json")}

    async def resume(self, body: dict[str, Any]) -> dict[str, Any]:
        key = pause_key(body.get("node"), body.get("vmid"))
        kv = await self._js.key_value(subjects.POLICY_BUCKET)
        try:
            await kv.delete(key)
        except KeyNotFoundError:
            return {"key": key, "resumed": False, "message": "was not paused"}
        return {"key": key, "resumed": True}

    async def dry_run(self, body: dict[str, Any], now: datetime) -> dict[str, Any]:
        switch, reason = body.get("switch"), body.get("reason", "")
        if switch not in {"on", "off", "config"} or not isinstance(reason, str):
            raise ControlError(400, 'switch must be "on", "off" or "config" (the file decides)')
        try:
            entry = await store_dry_run(await self._js.key_value(subjects.POLICY_BUCKET), switch, now, reason)
        except ValueError as exc:
            raise ControlError(400, f"invalid dry-run switch: {exc}") from None
        return {"key": DRY_RUN_KEY, "switch": entry.model_dump(mode="json") if entry else None}

    async def rollback(
        self, body: dict[str, Any], sample: NodeSample | None, now: datetime
    ) -> dict[str, Any]:
        node, vmid = body.get("node"), body.get("vmid")
        if not isinstance(node, str) or not isinstance(vmid, int):
            raise ControlError(400, "rollback needs node and vmid")
        try:
            key = subjects.state_key(node, vmid)
        except ValueError as exc:
            raise ControlError(400, str(exc)) from None
        original, saved_at = await self._original(key)
        reading = next((c for c in sample.containers if c.vmid == vmid), None) if sample else None
        if reading is None:
            raise ControlError(409, f"{key}: no current reading of the container, nothing requested")
        current = ResourceSize(cores=reading.cores, memory_mb=reading.memory_mb)
        if current == original:
            return {"key": key, "requested": False, "message": "already at its original size"}
        intent = ScaleIntent.build(
            node=node, vmid=vmid, expected=current, target=original,
            reason=DecisionReason(rule="rollback", summary=f"restore the size saved at {saved_at}"),
            source_id=f"rollback:console:{now.strftime('%Y%m%dT%H%M%S.%fZ')}",
            created_at=now, ttl_s=ROLLBACK_TTL_S, origin="rollback",
        )  # fmt: skip
        await self._js.publish(
            subjects.intents_subject(node), encode(intent), headers={"Nats-Msg-Id": intent.intent_id}
        )
        return {"key": key, "requested": True, "intent_id": intent.intent_id, "target": original.model_dump()}

    async def _original(self, key: str) -> tuple[ResourceSize, str]:
        kv = await self._js.key_value(subjects.BACKUP_BUCKET)
        try:
            entry = await kv.get(key)
        except NotFoundError:
            raise ControlError(404, f"{key}: no saved size: the autoscaler never changed it") from None
        record = json.loads(entry.value)
        return ResourceSize.model_validate(record["original"]), str(record.get("saved_at", "?"))
