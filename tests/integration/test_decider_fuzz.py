"""Fuzzing the metrics subject against a real nats-server: a few thousand generated
messages (garbage, random msgpack, valid samples with one field replaced, samples with
extreme values) never stop the replica, nothing stays pending, and a valid sample sent
afterwards is decided. Bounded: 3,000 messages drawn by hypothesis, one replica.

The messages are drawn first and sent together (drawing a list of thousands in one
hypothesis example is far slower and overruns its buffer); a failure names the
replica's counters, and the replica's log names each message it set aside."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgpack
from decider_harness import config_for, fresh, running_cluster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import reading

from shared import subjects
from shared.models import ContainerReading, NodeSample

NODES = tuple(f"pve{n}" for n in range(1, 7))  # under the per-node limit of 1000 each
MESSAGES = 3000

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.binary(max_size=30)
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
zones = st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)))
# The ends of the calendar, which once overflowed the off-peak computation, plus any instant.
instants = st.sampled_from(["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+14:00"]) | st.datetimes(
    timezones=zones, allow_imaginary=False
).map(lambda d: d.isoformat())
numbers = st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats()
SAMPLE_FIELDS = tuple(NodeSample.model_fields)
READING_FIELDS = tuple(ContainerReading.model_fields)


_BASE = fresh(reading(101, cpu_pct=95.0), reading(102, memory_pct=5.0)).model_dump(mode="json")


def _base() -> dict[str, Any]:
    return copy.deepcopy(_BASE)


@st.composite
def mutated_samples(draw: st.DrawFn) -> dict[str, Any]:
    document = _base()
    where = draw(st.sampled_from(("sample", "reading", "extreme")))
    if where == "sample":
        document[draw(st.sampled_from(SAMPLE_FIELDS))] = draw(documents)
    elif where == "reading":
        document["containers"][0][draw(st.sampled_from(READING_FIELDS))] = draw(documents | numbers)
    else:
        document.update(
            taken_at=draw(instants | st.just(datetime.now(UTC).isoformat())),
            seq=draw(st.integers(min_value=0, max_value=2**64 - 1) | st.just("1" * 100)),
            interval_s=draw(st.floats(min_value=1e-9, max_value=86_400)),
            node=draw(st.sampled_from(NODES)),
        )
    return document


def _pack(value: Any) -> bytes:
    try:
        return bytes(msgpack.packb(value, use_bin_type=True))
    except (OverflowError, ValueError, TypeError):
        return b"\xc1"


payloads = st.one_of(
    st.binary(max_size=300),
    documents.map(_pack),
    mutated_samples().map(_pack),
)
messages = st.tuples(st.sampled_from(NODES), payloads)


def generated_messages(count: int) -> list[tuple[str, bytes]]:
    """`count` messages drawn by hypothesis (reproducible: derandomized, no database)."""
    drawn: list[tuple[str, bytes]] = []

    @settings(
        max_examples=count, deadline=None, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck),
    )  # fmt: skip
    @given(message=messages)
    def collect(message: tuple[str, bytes]) -> None:
        drawn.append(message)

    collect()
    return drawn


def test_fuzzed_samples_never_stop_the_decider(broker: Any) -> None:
    batch = generated_messages(MESSAGES)
    assert len(batch) >= MESSAGES // 2  # hypothesis may stop early once it has seen enough distinct ones
    asyncio.run(_fuzz(broker, batch))


async def _fuzz(broker: Any, batch: list[tuple[str, bytes]]) -> None:
    async with running_cluster(broker) as group:
        replica = await group.start(config_for(broker), "fuzzed")
        for node, payload in batch:
            await group.nc.publish(subjects.metrics_subject(node), payload)
        await group.nc.flush()
        await group.drained(timeout=60)
        assert not replica.task.done(), "the replica stopped"
        canary = fresh(reading(4242, cpu_pct=95.0), seq=1, boot_id="canary")
        await group.publish(canary)
        await group.drained(timeout=20)
        intents = await group.intents()
        assert any(i.source_id == canary.sample_id and i.vmid == 4242 for i in intents)
        handler = replica.service.handler
        assert handler is not None
        handled = handler.counters.samples + handler.counters.invalid + handler.counters.refused
        assert handled + handler.counters.poison == len(batch) + 1  # every message answered once
