"""One batch of node samples: decode, decide (with compare-and-set on the state),
publish the intents, and only then acknowledge.

No sample stops the replica. Undecodable or invalid samples, samples on another node's
subject and samples from the future are logged, counted and terminated (never
redelivered); so is any sample whose handling raises (a poison message). A sample whose
state could not be written (contention, or the broker away) is nak'ed for later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from services.decider import metrics
from services.decider.policy import Decision, decide
from services.decider.policy_source import PolicySource
from services.decider.state_store import StateStore
from shared import failpoints, subjects
from shared.clock import Clock
from shared.codec import CodecError, decode, encode
from shared.models import NodeSample, ScaleIntent
from shared.validation import sanitize

log = logging.getLogger(__name__)
MAX_STATE_ATTEMPTS = 5
RETRY_DELAY_S = 1.0


@dataclass
class Counters:
    samples: int = 0
    decisions: int = 0  # containers decided
    intents: int = 0
    invalid: int = 0  # not a sample
    refused: int = 0  # a sample, but not one to believe: another node's subject, from the future
    poison: int = 0  # handling it raised
    stale: int = 0
    conflicts: int = 0
    retried: int = 0


class StateUnavailable(Exception):
    """The state could not be written now; the sample waits for a later delivery."""


class SampleHandler:
    def __init__(
        self,
        js: JetStreamContext,
        store: StateStore,
        policy: PolicySource,
        clock: Clock,
        *,
        replica_id: str = "decider",
    ) -> None:
        self._js = js
        self._store = store
        self._policy = policy
        self._clock = clock
        self._replica = replica_id
        self.counters = Counters()

    async def handle_batch(self, messages: Sequence[Msg]) -> None:
        """Samples of one node are decided in order; different nodes touch different
        keys, so they are decided concurrently and their round trips overlap.

        Messages are grouped by subject (one subject per node) and decoded inside each
        node's task, so the first node's intents go out while later ones are still being
        decoded: a sample does not wait for the whole batch."""
        by_subject: dict[str, list[Msg]] = {}
        for msg in messages:
            by_subject.setdefault(msg.subject, []).append(msg)
        await asyncio.gather(*(self._handle_node(msgs) for msgs in by_subject.values()))

    async def _handle_node(self, messages: list[Msg]) -> None:
        for msg in messages:
            try:
                await self._handle(msg)
            except Exception as exc:  # a poison message: set it aside, never stop the replica
                self.counters.poison += 1
                log.error("sample set aside, handling it failed: %s: %s",
                          type(exc).__name__, sanitize(exc, 300),
                          extra={"event": "sample_poison",
                                 "subject": sanitize(msg.subject, 200)})  # fmt: skip
                await _quietly(msg.term())

    async def _handle(self, msg: Msg) -> None:
        node_sample = await self._decode(msg)
        if node_sample is None:
            return
        try:
            decision = await self._decide_with_state(node_sample)
        except StateUnavailable as exc:
            self.counters.retried += 1
            log.warning("%s; sample %s left for redelivery", exc, node_sample.sample_id,
                        extra={"event": "state_unavailable", "node": node_sample.node})  # fmt: skip
            await _quietly(msg.nak(delay=RETRY_DELAY_S))
            return
        await failpoints.reach("decider.after-state-write")
        if decision.refused:
            await self._refuse(msg, decision.refused, node_sample.node)
            return
        self._count(node_sample, decision)
        await self._publish_then_ack(msg, decision.intents, decision.resent)

    async def _decode(self, msg: Msg) -> NodeSample | None:
        try:
            node_sample = decode(msg.data, NodeSample)
        except CodecError as exc:
            self.counters.invalid += 1
            metrics.SAMPLES_INVALID.inc()
            log.warning("invalid sample set aside: %s", sanitize(exc, 500),
                        extra={"event": "sample_invalid", "subject": sanitize(msg.subject, 200)})  # fmt: skip
            await _quietly(msg.term())
            return None
        if msg.subject != subjects.metrics_subject(node_sample.node):
            why = f"sample of node {node_sample.node} on another node's subject"
            await self._refuse(msg, why, msg.subject)
            return None
        return node_sample

    async def _refuse(self, msg: Msg, why: str, where: str) -> None:
        self.counters.refused += 1
        log.warning("sample refused: %s", why,
                    extra={"event": "sample_refused", "subject": sanitize(where, 200)})  # fmt: skip
        await _quietly(msg.term())

    def _count(self, sample: NodeSample, decision: Decision) -> None:
        self.counters.samples += 1
        metrics.SAMPLES.labels(sample.node).inc()
        if decision.ignored:
            self.counters.stale += 1
            metrics.SAMPLES_IGNORED.labels(sample.node).inc()
            log.info("sample %s ignored: %s", sample.sample_id, decision.ignored,
                     extra={"event": "sample_ignored", "node": sample.node})  # fmt: skip
        else:
            self.counters.decisions += len(sample.containers)
            metrics.DECISIONS.labels(sample.node).inc(len(sample.containers))

    async def _decide_with_state(self, sample: NodeSample) -> Decision:
        for _ in range(MAX_STATE_ATTEMPTS):
            with metrics.DECIDE_SECONDS.labels(sample.node).time():
                decision = decide(
                    sample, self._policy.view, self._store.states_for(sample.node), self._clock.now()
                )
            if not decision.state_changes:
                return decision
            try:
                conflicts = await self._store.write(sample.node, decision.state_changes)
                if not conflicts:
                    return decision
                # Another replica wrote first: read what it wrote and decide those containers again.
                self.counters.conflicts += len(conflicts)
                metrics.STATE_CONFLICTS.labels(sample.node).inc(len(conflicts))
                await self._store.refresh(sample.node, conflicts)
            except Exception as exc:  # the broker away, the bucket gone: not this sample's fault
                why = f"{type(exc).__name__}: {sanitize(exc, 200)}"
                raise StateUnavailable(f"state write failed ({why})") from exc
        raise StateUnavailable(f"state of {sample.sample_id} kept changing under us")

    async def _publish_then_ack(
        self, msg: Msg, intents: Sequence[ScaleIntent], resent: Sequence[ScaleIntent] = ()
    ) -> None:
        """Publish `intents` (new) and `resent` (decided before, same ids: the stream keeps
        one copy), then acknowledge the sample."""
        try:
            futures = [
                await self._js.publish_async(
                    subjects.intents_subject(intent.node),
                    encode(intent),
                    headers={"Nats-Msg-Id": intent.intent_id},
                )
                for intent in (*intents, *resent)
            ]
            await asyncio.gather(*futures)
        except Exception as exc:
            # Not stored: leave the sample for redelivery, which re-emits the same intents.
            log.warning("publishing intents failed, sample will be redelivered: %s", sanitize(exc, 300),
                        extra={"event": "intent_publish_failed"})  # fmt: skip
            await _quietly(msg.nak(delay=RETRY_DELAY_S))
            return
        for intent in intents:
            self.counters.intents += 1
            metrics.INTENTS.labels(intent.node, intent.direction, intent.reason.rule).inc()
            log.info("%s", intent.reason.summary, extra={
                "event": "intent", "node": intent.node, "vmid": intent.vmid,
                "intent_id": intent.intent_id, "dry_run": intent.dry_run,
                "policy_version": intent.policy_version, "replica": self._replica,
            })  # fmt: skip
        # A lost ack only means a redelivery, which replays the same intents.
        await _quietly(msg.ack())


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except Exception as exc:
        log.debug("ignored: %s", exc)
