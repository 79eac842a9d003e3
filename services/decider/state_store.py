"""The decider's state in the KV bucket, with a local view kept current by a watcher.

Reading is local (no round trip on the hot path); writing is compare-and-set on the
revision the view holds (`kv.create` for a new key). A lost compare-and-set means
another replica wrote first: the caller refreshes that key and decides again.

Keys expire in the bucket after its TTL without a delete marker, so the view forgets a
key it has not seen written for as long (`expire`), and memory does not grow with
containers that are gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.decider.kv_watch import follow, stop_following
from services.decider.policy import ContainerState, decode_state, encode_state
from shared import subjects
from shared.clock import Clock
from shared.validation import sanitize

log = logging.getLogger(__name__)
_DELETES = {"DEL", "PURGE"}


class StateStore:
    def __init__(self, kv: KeyValue, clock: Clock, ttl_s: float) -> None:
        self._kv = kv
        self._clock = clock
        self._ttl_s = ttl_s
        self._states: dict[str, dict[int, ContainerState]] = {}
        self._revisions: dict[str, dict[int, int]] = {}
        self._written_at: dict[tuple[str, int], float] = {}  # monotonic, for expiry
        self._watch_task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None

    async def start(self) -> None:
        """Load every key and follow later writes (ours and other replicas')."""
        await self._stop_watch()
        self._watcher = await self._kv.watchall()
        ready = asyncio.get_running_loop().create_future()
        self._watch_task = asyncio.create_task(follow(self._watcher, self._apply, ready, "state"))
        await ready

    async def stop(self) -> None:
        await self._stop_watch()

    def expire(self) -> int:
        """Forget keys not written for the bucket's TTL (the server has dropped them)."""
        horizon = self._clock.monotonic() - self._ttl_s
        old = [key for key, at in self._written_at.items() if at < horizon]
        for node, vmid in old:
            self._forget(node, vmid)
        return len(old)

    def states_for(self, node: str) -> Mapping[int, ContainerState]:
        return self._states.get(node, {})

    async def write(self, node: str, changes: Mapping[int, ContainerState]) -> list[int]:
        """Compare-and-set every change; returns the vmids whose write lost a race."""
        vmids = list(changes)
        results = await asyncio.gather(
            *(self._write_one(node, vmid, changes[vmid]) for vmid in vmids), return_exceptions=True
        )
        conflicts = []
        for vmid, result in zip(vmids, results, strict=True):
            if isinstance(result, KeyWrongLastSequenceError):
                conflicts.append(vmid)
            elif isinstance(result, BaseException):
                raise result
        return conflicts

    async def refresh(self, node: str, vmids: Iterable[int]) -> None:
        """Re-read keys from the server after a lost compare-and-set."""
        for vmid in vmids:
            try:
                entry = await self._kv.get(subjects.state_key(node, vmid))
            except KeyNotFoundError:  # includes deleted keys
                self._forget(node, vmid)
                continue
            self._remember(node, vmid, entry.revision or 0, entry.value)

    async def _write_one(self, node: str, vmid: int, state: ContainerState) -> None:
        key = subjects.state_key(node, vmid)
        revision = self._revisions.get(node, {}).get(vmid)
        data = encode_state(state)
        if revision is None:
            new_revision = await self._kv.create(key, data)
        else:
            new_revision = await self._kv.update(key, data, last=revision)
        self._set(node, vmid, new_revision, state)

    def _apply(self, entry: KeyValue.Entry) -> None:
        node, _, vmid_text = entry.key.partition(".")
        if not vmid_text.isdigit():
            return
        vmid = int(vmid_text)
        revision = entry.revision or 0
        known = self._revisions.get(node, {}).get(vmid)
        if known is not None and revision <= known:
            return  # our own write, already in the view
        if entry.operation in _DELETES:
            self._forget(node, vmid)
        else:
            self._remember(node, vmid, revision, entry.value)

    def _remember(self, node: str, vmid: int, revision: int, value: bytes | None) -> None:
        try:
            state = decode_state(value or b"")
        except ValueError as exc:
            # Keep the revision so the next write replaces the unreadable value.
            log.warning(
                "unreadable state for %s.%s replaced on next write: %s",
                node, vmid, sanitize(exc, 300), extra={"event": "state_unreadable"},
            )  # fmt: skip
            self._revisions.setdefault(node, {})[vmid] = revision
            self._states.get(node, {}).pop(vmid, None)
            return
        self._set(node, vmid, revision, state)

    def _set(self, node: str, vmid: int, revision: int, state: ContainerState) -> None:
        self._revisions.setdefault(node, {})[vmid] = revision
        self._states.setdefault(node, {})[vmid] = state
        self._written_at[(node, vmid)] = self._clock.monotonic()

    def _forget(self, node: str, vmid: int) -> None:
        self._revisions.get(node, {}).pop(vmid, None)
        self._states.get(node, {}).pop(vmid, None)
        self._written_at.pop((node, vmid), None)
        if not self._states.get(node, True):
            del self._states[node]
        if not self._revisions.get(node, True):
            del self._revisions[node]

    async def _stop_watch(self) -> None:
        await stop_following(self._watch_task, self._watcher)
        self._watch_task = self._watcher = None
