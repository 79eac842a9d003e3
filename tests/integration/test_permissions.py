"""Least privilege as deployed: each user of deploy/nats/nats-server.conf (users from
scripts/gen-env.sh for nodes pve1 and pve2) signs in and tries what it must not do,
then the setup user checks that nothing changed. docs/security.md lists the promises
these tests hold.
"""

from __future__ import annotations

import asyncio
import gc
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from nats.errors import Error as NatsError
from nats.js.api import ConsumerConfig, KeyValueConfig, StreamConfig, StreamSource, SubjectTransform

from shared import subjects
from shared.nats_settings import open_connection
from shared.provisioning import BUCKETS, verify
from tests.secure_broker import PER_NODE_USERS, USERS, ShippedBroker

pytestmark = [pytest.mark.integration, pytest.mark.shipped_nodes("pve1", "pve2")]

# (role, node) of every service user, as the services sign in.
SERVICE_USERS = {
    "collector-pve1": ("collector", "pve1"),
    "decider": ("decider", None),
    "actuator-pve1": ("actuator", "pve1"),
    "observer": ("observer", None),
    "notifier": ("notifier", None),
    "console": ("console", None),
}
REFUSED_WITHIN_S = 1.0  # a refused JetStream API request gets no answer: it times out


class Client:
    """A connection as one user, recording the permission violations the server reports."""

    def __init__(self, nc: Any, errors: list[str]) -> None:
        self.nc = nc
        self.errors = errors

    @classmethod
    async def open(cls, url: str, name: str) -> Client:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await open_connection(url, error_cb=on_error, connect_timeout=2, name=f"test-{name}")
        return cls(nc, errors)

    @property
    def js(self) -> Any:
        return self.nc.jetstream(timeout=REFUSED_WITHIN_S)

    def violations(self) -> list[str]:
        return [e for e in self.errors if "permissions violation" in e.lower()]

    async def denied(self, subject: str) -> bool:
        """Publish on `subject`; True when the server answers with a permissions violation."""
        before = len(self.violations())
        await self.nc.publish(subject, b"probe")
        await self.nc.flush(timeout=2)
        for _ in range(40):
            if len(self.violations()) > before:
                return True
            await asyncio.sleep(0.025)
        return False


@pytest.fixture
async def users(shipped_broker: ShippedBroker) -> AsyncIterator[dict[str, Client]]:
    clients = {"admin": await Client.open(shipped_broker.url, "admin")}
    for name, (role, node) in SERVICE_USERS.items():
        clients[name] = await Client.open(shipped_broker.url_for(role, node), name)
    clients["actuator-pve2"] = await Client.open(shipped_broker.url_for("actuator", "pve2"), "actuator-pve2")
    yield clients
    for client in clients.values():
        await client.nc.close()


async def everything_as_setup_made_it(admin: Client) -> None:
    """The setup user's view: every stream, consumer and bucket still has setup's settings."""
    from cli.setup import actuator_consumers
    from shared.config import AutoscaleConfig

    await verify(
        admin.nc.jetstream(), service="test",
        streams=[subjects.METRICS_STREAM, subjects.INTENTS_STREAM, subjects.EVENTS_STREAM],
        consumers=actuator_consumers(AutoscaleConfig(), ["pve1", "pve2"]),
        buckets=list(BUCKETS),
    )  # fmt: skip


def attacks(js: Any) -> dict[str, Callable[[], Awaitable[Any]]]:
    """What no service user may do to the streams, consumers and buckets."""
    transformed = StreamSource(
        name=subjects.METRICS_STREAM,
        subject_transforms=[SubjectTransform(src="autoscale.metrics.pve1", dest="autoscale.intents.pve1")],
    )
    return {
        "seal the events stream": lambda: js.update_stream(
            StreamConfig(name=subjects.EVENTS_STREAM, subjects=[subjects.EVENTS_ALL], sealed=True)
        ),
        "shrink the events stream to one message": lambda: js.update_stream(
            StreamConfig(name=subjects.EVENTS_STREAM, subjects=[subjects.EVENTS_ALL], max_msgs=1)
        ),
        "turn samples into intents (transformed source)": lambda: js.update_stream(
            StreamConfig(name=subjects.INTENTS_STREAM, subjects=[subjects.INTENTS_ALL], sources=[transformed])
        ),
        "create a stream": lambda: js.add_stream(StreamConfig(name="EVIL", subjects=["evil.>"])),
        "delete a stream": lambda: js.delete_stream(subjects.EVENTS_STREAM),
        "purge the intents": lambda: js.purge_stream(subjects.INTENTS_STREAM),
        "delete an event": lambda: js._nc.request(  # nats-py's delete_msg waits 5 s, whatever asked
            f"$JS.API.STREAM.MSG.DELETE.{subjects.EVENTS_STREAM}", b'{"seq": 1}', timeout=REFUSED_WITHIN_S
        ),
        "delete the deciders' consumer": lambda: js.delete_consumer(
            subjects.METRICS_STREAM, subjects.DECIDER_CONSUMER
        ),
        "change pve2's actuator consumer": lambda: js.add_consumer(
            subjects.INTENTS_STREAM,
            ConsumerConfig(
                durable_name=subjects.actuator_consumer("pve2"),
                filter_subject=subjects.intents_subject("pve2"),
                max_deliver=1,
            ),
        ),
        "create a bucket": lambda: js.create_key_value(KeyValueConfig(bucket="evil")),
        "delete the policy bucket": lambda: js.delete_key_value(subjects.POLICY_BUCKET),
        "delete the groups bucket": lambda: js.delete_key_value(subjects.GROUPS_BUCKET),
    }


@pytest.mark.parametrize("name", list(SERVICE_USERS))
async def test_no_service_user_can_create_change_or_remove_streams_consumers_or_buckets(
    users: dict[str, Client], name: str
) -> None:
    admin, client = users["admin"], users[name]
    await admin.nc.jetstream().publish(subjects.events_subject("pve1", 101), b"history")
    tried = attacks(client.js)
    results = await asyncio.gather(*(attack() for attack in tried.values()), return_exceptions=True)
    succeeded = [
        what for what, result in zip(tried, results, strict=True) if not isinstance(result, Exception)
    ]
    assert not succeeded, f"{name} could {succeeded}"
    assert len(client.violations()) >= len(tried)  # refused by the server, not failing on their own
    await everything_as_setup_made_it(admin)
    events = await admin.nc.jetstream().stream_info(subjects.EVENTS_STREAM)
    assert events.state.messages == 1
    with pytest.raises(NatsError):
        await admin.nc.jetstream().stream_info("EVIL")


async def test_a_collector_publishes_only_its_own_nodes_samples(users: dict[str, Client]) -> None:
    collector = users["collector-pve1"]
    ack = await collector.js.publish(subjects.metrics_subject("pve1"), b"sample")
    assert ack.stream == subjects.METRICS_STREAM
    with pytest.raises(NatsError):  # no acknowledgement: the server dropped it
        await collector.js.publish(subjects.metrics_subject("pve2"), b"forged")
    assert collector.violations()
    info = await users["admin"].nc.jetstream().stream_info(subjects.METRICS_STREAM, subjects_filter=">")
    assert info.state.subjects == {subjects.metrics_subject("pve1"): 1}


async def test_an_actuator_takes_only_its_own_nodes_intents(users: dict[str, Client]) -> None:
    decider, pve1, pve2 = users["decider"], users["actuator-pve1"], users["actuator-pve2"]
    await decider.js.publish(subjects.intents_subject("pve2"), b"intent", headers={"Nats-Msg-Id": "i-2"})

    stolen = await pve1.js.pull_subscribe_bind(subjects.actuator_consumer("pve2"), subjects.INTENTS_STREAM)
    with pytest.raises(NatsError):
        await stolen.fetch(1, timeout=REFUSED_WITHIN_S)
    with pytest.raises(NatsError):  # nor through a consumer of its own filtered on pve2
        await pve1.js.add_consumer(
            subjects.INTENTS_STREAM,
            ConsumerConfig(durable_name="actuator-pve1-too", filter_subject=subjects.intents_subject("pve2")),
        )
    with pytest.raises(NatsError):
        await pve1.js.get_last_msg(subjects.INTENTS_STREAM, subjects.intents_subject("pve2"))
    await pve1.nc.subscribe(subjects.INTENTS_ALL)  # nor by listening to the subject
    assert await pve1.denied(subjects.events_subject("pve2", 101))  # nor answer for pve2
    assert await pve1.denied(f"$KV.{subjects.ACTUATOR_BUCKET}.{subjects.state_key('pve2', 101)}")
    assert await pve1.denied(f"$KV.{subjects.BACKUP_BUCKET}.{subjects.state_key('pve2', 101)}")

    # Still there for pve2's actuator, which can do its whole job on it.
    own = await pve2.js.pull_subscribe_bind(subjects.actuator_consumer("pve2"), subjects.INTENTS_STREAM)
    [intent] = await own.fetch(1, timeout=2)
    assert intent.data == b"intent"
    journal = await pve2.js.key_value(subjects.ACTUATOR_BUCKET)
    await journal.put(subjects.state_key("pve2", 101), b"in-flight")
    assert (await journal.get(subjects.state_key("pve2", 101))).value == b"in-flight"
    await pve2.js.publish(subjects.events_subject("pve2", 101), b"event")
    await intent.ack_sync()
    assert not pve2.errors


async def test_each_service_user_can_do_its_job_through_jetstream(users: dict[str, Client]) -> None:
    node = "pve1"
    # collector: a sample lands in the metrics stream (publish + ack on its inbox)
    ack = await users["collector-pve1"].js.publish(subjects.metrics_subject(node), b"sample")
    assert ack.stream == subjects.METRICS_STREAM

    # decider: takes the sample from the shared consumer, keeps state, follows the policy,
    # publishes an intent for any node
    decider = users["decider"].js
    pull = await decider.pull_subscribe_bind(subjects.DECIDER_CONSUMER, subjects.METRICS_STREAM)
    [sample] = await pull.fetch(1, timeout=2)
    assert sample.data == b"sample"
    await sample.ack_sync()
    state = await decider.key_value(subjects.STATE_BUCKET)
    revision = await state.put(subjects.state_key(node, 101), b"cooldown")
    await state.update(subjects.state_key(node, 101), b"cooldown-2", last=revision)
    assert (await state.get(subjects.state_key(node, 101))).value == b"cooldown-2"
    policy = await decider.key_value(subjects.POLICY_BUCKET)
    watcher = await policy.watchall()
    await watcher.stop()
    for target in ("pve1", "pve2"):
        ack = await decider.publish(
            subjects.intents_subject(target), b"intent", headers={"Nats-Msg-Id": f"i-{target}"}
        )
        assert ack.stream == subjects.INTENTS_STREAM

    # actuator: its consumer (made by setup), journal and backups, an event, then the ack
    actuator = users["actuator-pve1"].js
    pull = await actuator.pull_subscribe_bind(subjects.actuator_consumer(node), subjects.INTENTS_STREAM)
    [intent] = await pull.fetch(1, timeout=2)
    journal = await actuator.key_value(subjects.ACTUATOR_BUCKET)
    await journal.put(subjects.state_key(node, 101), b"in-flight")
    backups = await actuator.key_value(subjects.BACKUP_BUCKET)
    await backups.create(subjects.state_key(node, 101), b"2 cores")
    assert (await backups.get(subjects.state_key(node, 101))).value == b"2 cores"
    ack = await actuator.publish(subjects.events_subject(node, 101), b"event")
    assert ack.stream == subjects.EVENTS_STREAM
    await intent.ack_sync()

    # observer: replays the events stream from the start
    observer = users["observer"].js
    replay = await observer.subscribe(
        subjects.EVENTS_ALL, stream=subjects.EVENTS_STREAM, ordered_consumer=True
    )
    assert (await replay.next_msg(timeout=2)).data == b"event"
    await replay.unsubscribe()

    for name, client in users.items():
        assert not client.errors, f"{name}: {client.errors}"


@pytest.mark.parametrize(
    ("user", "subject"),
    [
        ("collector-pve1", "autoscale.metrics.pve2"),
        ("collector-pve1", "autoscale.intents.pve1"),
        ("collector-pve1", "autoscale.events.pve1.101"),
        ("collector-pve1", "$KV.autoscale_state.pve1.101"),
        ("collector-pve1", "$JS.API.STREAM.UPDATE.AUTOSCALE_INTENTS"),
        ("decider", "autoscale.events.pve1.101"),
        ("decider", "autoscale.metrics.pve1"),
        ("decider", "$KV.autoscale_policy.current"),
        ("decider", "$KV.autoscale_actuator.pve1.101"),
        ("decider", "$JS.API.STREAM.UPDATE.AUTOSCALE_EVENTS"),
        ("decider", "$JS.API.CONSUMER.CREATE.AUTOSCALE_METRICS.deciders"),
        ("decider", "$KV.autoscale_groups.members.web"),
        ("decider", "$KV.autoscale_groups.ids.201"),
        ("decider", "$KV.autoscale_groups.ips.web.10-0-0-21"),
        ("actuator-pve1", "autoscale.intents.pve1"),
        ("actuator-pve1", "autoscale.metrics.pve1"),
        ("actuator-pve1", "autoscale.events.pve2.101"),
        ("actuator-pve1", "$KV.autoscale_state.pve1.101"),
        ("actuator-pve1", "$JS.ACK.AUTOSCALE_INTENTS.actuator-pve2.1.1.1.1.0"),
        ("actuator-pve1", "$JS.API.CONSUMER.MSG.NEXT.AUTOSCALE_METRICS.deciders"),
        ("actuator-pve1", "$JS.API.CONSUMER.DURABLE.CREATE.AUTOSCALE_INTENTS.actuator-pve1"),
        ("actuator-pve1", "$KV.autoscale_groups.action.web"),
        ("actuator-pve1", "$KV.autoscale_groups.outcome.pve2.web"),
        ("decider", "$KV.autoscale_groups.outcome.pve1.web"),
        ("collector-pve1", "$KV.autoscale_groups.members.web"),
        ("observer", "$KV.autoscale_groups.members.web"),
        ("notifier", "$KV.autoscale_groups.members.web"),
        ("observer", "autoscale.events.pve1.101"),
        ("observer", "autoscale.intents.pve1"),
        ("observer", "$JS.API.STREAM.DELETE.AUTOSCALE_EVENTS"),
        ("console", "autoscale.metrics.pve1"),
        ("console", "autoscale.events.pve1.101"),
        ("console", "$KV.autoscale_policy.current"),
        ("console", "$KV.autoscale_state.pve1.101"),
        ("console", "$KV.autoscale_backups.pve1.101"),
        ("console", "$JS.API.CONSUMER.MSG.NEXT.AUTOSCALE_METRICS.deciders"),
        ("console", "$JS.API.CONSUMER.DURABLE.CREATE.AUTOSCALE_EVENTS.console"),
        ("console", "$KV.autoscale_groups.members.web"),
        ("console", "$KV.autoscale_groups.action.web"),
    ],
)
async def test_a_service_user_cannot_publish_outside_its_job(
    users: dict[str, Client], user: str, subject: str
) -> None:
    assert await users[user].denied(subject)


async def test_only_the_observer_and_admin_may_listen_to_samples_or_events(users: dict[str, Client]) -> None:
    for name in ("collector-pve1", "decider", "actuator-pve1"):
        client = users[name]
        await client.nc.subscribe(subjects.EVENTS_ALL)
        await client.nc.subscribe(subjects.METRICS_ALL)
        await client.nc.flush(timeout=2)
    await asyncio.sleep(0.2)
    for name in ("collector-pve1", "decider", "actuator-pve1"):
        assert len(users[name].violations()) == 2, name
    observer = users["observer"]
    await observer.nc.subscribe(subjects.EVENTS_ALL)
    await observer.nc.flush(timeout=2)
    await asyncio.sleep(0.2)
    assert not observer.errors


def refused_subscriptions(client: Client) -> set[str]:
    """The subjects the server refused `client` a subscription to (lower case, as nats-py
    reports them)."""
    return {
        match.group(1)
        for error in client.violations()
        if (match := re.search(r'subscription to "([^"]+)"', error, re.IGNORECASE))
    }


# Every user the shipped role files make (a new role file is covered too), but admin.
SHIPPED_USERS = {
    **{role: (role, None) for role in USERS if role != "admin"},
    **{f"{role}-{node}": (role, node) for role in PER_NODE_USERS for node in ("pve1", "pve2")},
}


@pytest.mark.parametrize("name", list(SHIPPED_USERS))
async def test_a_user_may_listen_only_on_its_own_inbox(shipped_broker: ShippedBroker, name: str) -> None:
    client = await Client.open(shipped_broker.url_for(*SHIPPED_USERS[name]), name)
    own = client.nc.new_inbox()
    assert own.startswith(f"_INBOX.{name}.")
    others = [f"_INBOX.{other}.>" for other in SHIPPED_USERS if other != name]
    # everyone's replies; any user's; nats-py's default inbox (a client without the prefix)
    forbidden = ["_INBOX.>", "_INBOX.*.>", "_INBOX.*", "_INBOX.xq3mz9", *others]
    try:
        for subject in [*forbidden, own]:
            await client.nc.subscribe(subject)
        await client.nc.flush(timeout=2)
        for _ in range(40):
            if len(refused_subscriptions(client)) >= len(forbidden):
                break
            await asyncio.sleep(0.025)
        assert refused_subscriptions(client) == {subject.lower() for subject in forbidden}
    finally:
        await client.nc.close()


async def test_another_user_sees_none_of_a_users_replies(users: dict[str, Client]) -> None:
    """The console (which may read the state bucket too) listens for the decider's replies:
    refused, and it gets nothing while the decider's reads and publish acks arrive."""
    decider, console = users["decider"], users["console"]
    seen: list[str] = []

    async def record(msg: Any) -> None:
        seen.append(msg.subject)

    await console.nc.subscribe("_INBOX.decider.>", cb=record)
    await console.nc.flush(timeout=2)
    state = await decider.js.key_value(subjects.STATE_BUCKET)
    await state.put(subjects.state_key("pve1", 101), b"cooldown")
    assert (await state.get(subjects.state_key("pve1", 101))).value == b"cooldown"
    ack = await decider.js.publish(subjects.intents_subject("pve1"), b"intent", headers={"Nats-Msg-Id": "r"})
    assert ack.stream == subjects.INTENTS_STREAM
    await asyncio.sleep(0.2)
    assert refused_subscriptions(console) == {"_inbox.decider.>"}
    assert seen == []
    assert not decider.errors


# nats-py leaves the socket of a refused connection for the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_anonymous_and_wrong_password_clients_are_refused(shipped_broker: ShippedBroker) -> None:
    async def quiet(_exc: Exception) -> None:
        return None

    _, pve2_password = shipped_broker.credentials("collector", "pve2")
    for credentials in (
        {},
        {"user": "decider", "password": "wrong"},
        {"user": "nobody", "password": "x"},
        {"user": "collector-pve1", "password": pve2_password},  # another node's password
        {"user": "collector", "password": pve2_password},  # the old shared user is gone
    ):
        with pytest.raises((NatsError, OSError)):
            await open_connection(
                f"nats://127.0.0.1:{shipped_broker.port}", allow_reconnect=False, max_reconnect_attempts=0,
                connect_timeout=2, error_cb=quiet, **credentials,
            )  # fmt: skip
    gc.collect()  # report those sockets here, not in the next test


async def test_the_groups_bucket_serves_each_user_its_part(users: dict[str, Client]) -> None:
    """Deciders take and release a group's action lock with compare-and-set and read the
    membership and outcomes; actuators write membership, reservations and their node's
    outcomes; console and observer read."""
    from nats.js.errors import KeyWrongLastSequenceError

    members, lock = subjects.group_members_key("web"), subjects.group_action_key("web")
    actuator = await users["actuator-pve1"].js.key_value(subjects.GROUPS_BUCKET)
    written = await actuator.create(members, b'{"members": [200, 201]}')
    await actuator.update(members, b'{"members": [200, 201, 202]}', last=written)
    await actuator.create(subjects.group_id_key(202), b"reserved")
    await actuator.create(subjects.group_ip_key("web", "10.0.0.22"), b"202")
    await actuator.put(subjects.group_outcome_key("pve1", "web"), b"failed")  # its own node's only

    decider = await users["decider"].js.key_value(subjects.GROUPS_BUCKET)
    taken = await decider.create(lock, b"scale-out")
    with pytest.raises(KeyWrongLastSequenceError):  # a second replica loses the race
        await decider.create(lock, b"scale-out again")
    assert (await decider.get(members)).value == b'{"members": [200, 201, 202]}'
    assert (await decider.get(subjects.group_outcome_key("pve1", "web"))).value == b"failed"
    await decider.delete(lock, last=taken)

    for reader in ("console", "observer"):
        kv = await users[reader].js.key_value(subjects.GROUPS_BUCKET)
        assert (await kv.get(members)).value == b'{"members": [200, 201, 202]}', reader
        watcher = await kv.watchall()
        await watcher.stop()
    for name in ("actuator-pve1", "decider", "console", "observer"):
        assert not users[name].violations(), f"{name}: {users[name].errors}"
