"""One writer per node: the actuator process holding the node's lease applies its intents.

Several actuators may run for one node (high availability); they share the node's
durable consumer, but only the holder of the lease (KV `autoscale_actuator`, key
`<node>.leader`) fetches from it. Every write of the lease is a compare-and-set on its
KV revision, so two processes can never both take it:

- no lease (first start, or the holder stopped cleanly and deleted it): `create` it;
- a lease whose revision has not changed for `ttl_s`, timed on this process's own
  monotonic clock from when it first saw that revision: the holder is dead or cut off,
  `update` it with that revision (clocks of different hosts are never compared);
- the holder renews it every `renew_every_s`, with the revision it last wrote; a renewal
  that fails the compare-and-set means another process took the lease: this one stops.

The holder counts its lease as valid until the moment it *sent* its last successful
renewal plus `ttl_s`; a standby cannot take over before that moment. `ensure` refuses
(`LeaseLost`) any step that could not finish within the lease, so a process that was
frozen or cut off from NATS never runs pct after another could have taken over.
docs/actuator.md ("Two actuators for one node") gives the whole argument.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.js.errors import KeyWrongLastSequenceError, NotFoundError

from services.actuator import metrics
from services.actuator.records import LeaseRecord
from shared.clock import Clock

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """This process does not hold the node's lease long enough for the next step."""


def lease_key(node: str) -> str:
    # Under `<node>.`, where the node's actuator user may write; no vmid is named `leader`.
    return f"{node}.leader"


def holder_name() -> str:
    """Unique per process: a restarted actuator is a new holder and waits like any other."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class _Held:
    revision: int
    valid_until: float  # monotonic: when our last successful renewal was sent + ttl
    acquired_at: datetime


@dataclass
class _Seen:
    revision: int
    since: float  # monotonic: when this process first saw that revision


class Leadership:
    def __init__(self, *, kv: Any, node: str, ttl_s: float, renew_every_s: float, clock: Clock,
                 holder: str | None = None) -> None:  # fmt: skip
        self._kv = kv
        self._node = node
        self._key = lease_key(node)
        self.ttl_s = ttl_s
        self._renew_every_s = renew_every_s
        self._clock = clock
        self.holder = holder or holder_name()
        self._held: _Held | None = None
        self._seen: _Seen | None = None
        self._lock = asyncio.Lock()  # one KV call on the lease at a time: revisions stay in order

    @property
    def leading(self) -> bool:
        return self._remaining() > 0

    async def run(self, stop: asyncio.Event) -> None:
        """Take or keep the lease until `stop`; never raises for broker trouble."""
        while not stop.is_set():
            await self.step()
            pause = self._renew_every_s if self._held is not None else self.ttl_s / 4
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)

    async def step(self) -> None:
        """Renew the lease if held, else see whether it can be taken."""
        async with self._lock:
            try:
                if self._held is not None:
                    await self._renew()
                else:
                    await self._try_take()
            except Exception as exc:  # broker trouble: the lease runs out on its own if it lasts
                log.warning("cannot reach the node lease", extra={"event": "lease_unreachable",
                            "node": self._node, "error": f"{type(exc).__name__}: {exc}"})  # fmt: skip
        metrics.LEADER.labels(self._node).set(1 if self.leading else 0)

    async def ensure(self, for_s: float) -> None:
        """Return only if the lease is ours for at least `for_s` more seconds (renewing it
        first when it would not be); else raise `LeaseLost`."""
        if self._remaining() >= for_s:
            return
        await self.step()
        if self._remaining() < for_s:
            raise LeaseLost(f"node {self._node}: this actuator does not hold the lease for {for_s:.1f}s more")

    async def release(self) -> None:
        """Give the lease up at a clean stop, so a standby takes over at once."""
        async with self._lock:
            held, self._held = self._held, None
            if held is None:
                return
            with contextlib.suppress(Exception):  # not ours any more, or no broker: it expires
                await self._kv.delete(self._key, last=held.revision)
                log.info("node lease released", extra={"event": "lease_released", "node": self._node})
        metrics.LEADER.labels(self._node).set(0)

    def _remaining(self) -> float:
        return self._held.valid_until - self._clock.monotonic() if self._held is not None else 0.0

    def _record(self) -> bytes:
        now = self._clock.now()
        acquired_at = self._held.acquired_at if self._held is not None else now
        record = LeaseRecord(holder=self.holder, acquired_at=acquired_at, renewed_at=now)
        return record.model_dump_json().encode()

    async def _renew(self) -> None:
        assert self._held is not None
        sent = self._clock.monotonic()
        try:
            revision = await self._kv.update(self._key, self._record(), last=self._held.revision)
        except KeyWrongLastSequenceError:
            self._held = None
            log.warning("node lease taken by another actuator: standing by",
                        extra={"event": "lease_lost", "node": self._node})  # fmt: skip
            return
        self._held = _Held(revision, sent + self.ttl_s, self._held.acquired_at)

    async def _try_take(self) -> None:
        sent = self._clock.monotonic()
        try:
            entry = await self._kv.get(self._key)
        except NotFoundError:  # none, or deleted at a clean stop
            with contextlib.suppress(KeyWrongLastSequenceError):  # another process was quicker
                self._taken(await self._kv.create(self._key, self._record()), sent, "free")
            return
        # Timed from the answer, not the request: the holder sent this revision before it.
        seen_at = self._clock.monotonic()
        if self._seen is None or self._seen.revision != entry.revision:
            self._seen = _Seen(entry.revision, seen_at)  # alive (it renewed) or newly seen
            return
        if seen_at - self._seen.since < self.ttl_s:
            return
        sent = self._clock.monotonic()
        try:
            revision = await self._kv.update(self._key, self._record(), last=entry.revision)
        except KeyWrongLastSequenceError:
            self._seen = None  # renewed or taken just now
            return
        self._taken(revision, sent, "expired")

    def _taken(self, revision: int, sent: float, how: str) -> None:
        self._held, self._seen = _Held(revision, sent + self.ttl_s, self._clock.now()), None
        log.info(
            "node lease taken: applying this node's intents",
            extra={"event": "lease_taken", "node": self._node, "holder": self.holder, "lease": how},
        )
