"""Fuzz the intents subject and the events consumer path (issue 10).

Property-based (hypothesis), bounded: a few thousand messages in batches against one
actuator on a real nats-server. After every batch the actuator is still running, nothing
is left in the work queue, every decodable intent has exactly one event, and a valid
intent sent after the batch is applied. The `events` command reads a stream salted with
garbage and still prints every valid event.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import pytest
from actuator_harness import NODE, EventReader, eventually, intent, running_actuator, sim_node
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.actuator.event_builder import build_event
from services.actuator.wiring import Actuator
from shared import subjects
from shared.codec import encode
from shared.embedded_broker import EmbeddedBroker, start_broker
from shared.models import DecisionReason, ResourceSize, ScaleEvent, ScaleIntent
from shared.nats_settings import open_connection
from shared.provisioning import provision
from simnode.tree import SimNode

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parents[2]
VMIDS = (101, 102, 103, 104)
SENTINEL = 105  # only the fuzz's valid follow-up intents touch it
BATCH = 50
BATCHES = 40  # 2,000 intents-subject messages in all
T = TypeVar("T")


@dataclass
class Rig:
    """A broker and an actuator running on their own event loop, in a thread."""

    broker: EmbeddedBroker
    sim: SimNode
    loop: asyncio.AbstractEventLoop
    nc: Any = None
    actuator: Actuator | None = None
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    sent: int = 0  # fuzzed messages published on the intents subject

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("fuzz")
    broker = start_broker(root / "js")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sim = sim_node(root / "node", *((vmid, 2, 1024) for vmid in (*VMIDS, SENTINEL)))
    rig = Rig(broker, sim, loop)

    async def start() -> None:
        rig.nc = await open_connection(broker.url)
        await provision(rig.nc.jetstream())
        rig.actuator = await rig.stack.enter_async_context(running_actuator(rig.nc, sim))

    async def finish() -> None:
        await rig.stack.aclose()
        await rig.nc.close()

    rig.run(start())
    try:
        yield rig
    finally:
        rig.run(finish())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()  # else its sockets are reclaimed, with a warning, during a later test
        broker.stop()


# ------------------------------------------------------------------ messages

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True),
    st.text(max_size=40), st.binary(max_size=40),
)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
memory_sizes = st.sampled_from([16, 256, 512, 1024, 2048, 64 * 1024 * 1024])
sizes = st.builds(lambda cores, memory: (cores, memory), st.integers(1, 40), memory_sizes)
BOUNDED = settings(
    deadline=None, derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)  # fmt: skip


@st.composite
def valid_intents(draw: st.DrawFn) -> ScaleIntent:
    return ScaleIntent.build(
        node=draw(st.sampled_from([NODE, NODE, NODE, "pve2"])),
        vmid=draw(st.sampled_from([*VMIDS, 100, 999])),
        expected=_size(draw(sizes)),
        target=_size(draw(sizes)),
        reason=DecisionReason(rule=draw(st.text(max_size=64)), summary=draw(st.text(max_size=200))),
        source_id=draw(st.text(min_size=1, max_size=20)),
        created_at=datetime.now(UTC) - timedelta(seconds=draw(st.integers(0, 400))),
        ttl_s=draw(st.sampled_from([1, 120, 3600])),
        dry_run=draw(st.booleans()),
    )


@st.composite
def mutated_intents(draw: st.DrawFn) -> bytes:
    document = intent().model_dump(mode="json")
    key = draw(st.sampled_from(sorted(document)))
    if draw(st.booleans()):
        document[key] = draw(documents)
    else:
        document.pop(key)
    return bytes(msgpack.packb(document, use_bin_type=True))


messages = st.one_of(
    st.binary(max_size=300),
    documents.map(lambda doc: bytes(msgpack.packb(doc, use_bin_type=True))),
    mutated_intents(),
    valid_intents().map(encode),
)


def _size(pair: tuple[int, int]) -> ResourceSize:
    return ResourceSize(cores=pair[0], memory_mb=pair[1])


def _sane(pair: tuple[int, int]) -> bool:
    return pair[0] >= 1 and 16 <= pair[1] <= 64 * 1024 * 1024


# ------------------------------------------------------------------ properties


async def _stored_intent_ids(js: Any) -> list[str]:
    reader = await EventReader.open(js)
    found: list[ScaleEvent] = []
    while batch := await reader.nothing_more(wait_s=0.3):
        found += batch
    return [event.intent_id for event in found]


async def _send_batch_then_a_valid_intent(rig: Rig, batch: list[bytes]) -> dict[str, Any]:
    js = rig.nc.jetstream()
    for payload in batch:
        await js.publish(subjects.intents_subject(NODE), payload)
    rig.sent += len(batch)
    current = int(rig.sim.read_conf(SENTINEL)["cores"])
    target = (current % 4 + 1, 1024)
    follow_up = intent(SENTINEL, expected=(current, 1024), target=target, source_id=str(current))

    async def settled() -> bool:
        return bool((await js.stream_info(subjects.INTENTS_STREAM)).state.messages == 0)

    await js.publish(subjects.intents_subject(NODE), encode(follow_up))
    await eventually(settled, timeout_s=45, interval_s=0.2)
    ids = await _stored_intent_ids(js)
    return {"follow_up": follow_up.intent_id, "ids": ids}


@settings(BOUNDED, max_examples=BATCHES)
@given(batch=st.lists(messages, min_size=BATCH, max_size=BATCH))
def test_fuzzed_intents_never_stop_the_actuator_nor_stick_and_valid_ones_still_apply(
    rig: Rig, batch: list[bytes]
) -> None:
    seen = rig.run(_send_batch_then_a_valid_intent(rig, batch), timeout_s=90)
    ids: list[str] = seen["ids"]
    assert seen["follow_up"] in ids
    assert len(ids) == len(set(ids)), "an intent got more than one event"


def test_the_fuzz_sent_a_few_thousand_messages(rig: Rig) -> None:
    if rig.sent == 0:
        pytest.skip("counts the fuzz test above; run the whole module")
    assert rig.sent >= BATCH * BATCHES * 0.9, rig.sent  # hypothesis may shrink a few batches
    assert rig.actuator is not None
    counts = dict(rig.actuator.handler.counts)
    print(f"fuzzed intents-subject messages: {rig.sent}; actuator counts: {counts}")


# ------------------------------------------------------------------ events consumer path


@settings(BOUNDED, max_examples=4)
@given(batch=st.lists(st.one_of(st.binary(max_size=300), documents.map(
    lambda doc: bytes(msgpack.packb(doc, use_bin_type=True)))), min_size=200, max_size=200))  # fmt: skip
def test_the_events_command_survives_garbage_in_the_stream_and_prints_every_valid_event(
    rig: Rig, batch: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    item = intent(101, source_id=str(len(batch)))
    valid = build_event(item, "skipped", "stale", occurred_at=datetime.now(UTC))

    async def publish() -> None:
        js = rig.nc.jetstream()
        for payload in batch:
            await js.publish(subjects.events_subject(NODE, 101), payload)
        await js.publish(subjects.events_subject(NODE, 101), encode(valid))

    rig.run(publish())
    config = tmp_path_factory.mktemp("events") / "empty.yaml"
    config.write_text("{}\n")
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "events", "--config", str(config), "--nats-url", rig.broker.url,
         "--json", "--vmid", "101"],
        cwd=PROJECT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert valid.event_id in done.stdout
    assert "Traceback" not in done.stderr
