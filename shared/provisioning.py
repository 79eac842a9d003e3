"""The streams, consumers and buckets the system needs: created by `setup`, checked by services.

`provision` (create or update, idempotent) runs only as the setup user: `lxc-autoscale
setup`, the embedded demo and test fixtures. Services hold no right to create or change
any of them; at start-up they `verify` that what they use exists with the expected
settings and stop with a message naming what is missing (docs/security.md).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, BadRequestError, NotFoundError

from shared import subjects
from shared.observability import PROVISIONING_VERIFIED, READINESS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSettings:
    intents_duplicate_window_s: float = 120.0  # NATS' default; covers publish retries
    intents_max_age_s: float = 3600.0  # an intent older than this is useless anyway
    events_max_age_s: float = 30 * 24 * 3600.0  # history for audit and late subscribers
    events_duplicate_window_s: float = 300.0
    metrics_max_age_s: float = 300.0
    # Room for a burst of one node's samples (a collector catching up) until a decider
    # takes them; max_age, not this, bounds the stream in normal running.
    metrics_per_node_kept: int = 1000
    decider_ack_wait_s: float = 10.0
    decider_max_deliver: int = 5
    replicas: int = 1  # copies of every stream and bucket: NATS.replicas (1, or 3 on a cluster)
    # Decider state of a container that no sample changed for this long expires (a
    # removed container's keys do not stay for ever); longer than any window or cooldown.
    state_ttl_s: float = 24 * 3600.0


def stream_configs(settings: StreamSettings) -> list[StreamConfig]:
    return [
        StreamConfig(
            name=subjects.METRICS_STREAM,
            subjects=[subjects.METRICS_ALL],
            retention=RetentionPolicy.LIMITS,
            max_age=settings.metrics_max_age_s,
            max_msgs_per_subject=settings.metrics_per_node_kept,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            duplicate_window=60.0,
            num_replicas=settings.replicas,
        ),
        StreamConfig(
            name=subjects.INTENTS_STREAM,
            subjects=[subjects.INTENTS_ALL],
            retention=RetentionPolicy.WORK_QUEUE,
            max_age=settings.intents_max_age_s,
            duplicate_window=settings.intents_duplicate_window_s,
            storage=StorageType.FILE,
            num_replicas=settings.replicas,
        ),
        StreamConfig(
            name=subjects.EVENTS_STREAM,
            subjects=[subjects.EVENTS_ALL],
            retention=RetentionPolicy.LIMITS,
            max_age=settings.events_max_age_s,
            duplicate_window=settings.events_duplicate_window_s,
            storage=StorageType.FILE,
            num_replicas=settings.replicas,
        ),
    ]


def decider_consumer_config(settings: StreamSettings) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=subjects.DECIDER_CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.NEW,
        ack_wait=settings.decider_ack_wait_s,
        max_deliver=settings.decider_max_deliver,
        filter_subject=subjects.METRICS_ALL,
        max_ack_pending=1000,
    )


ACTUATOR_RECORD_TTL_S = 2 * 3600.0


def bucket_configs(settings: StreamSettings) -> list[KeyValueConfig]:
    """Every bucket, each with `settings.replicas` copies."""
    copies = settings.replicas
    return [
        KeyValueConfig(bucket=subjects.STATE_BUCKET, history=1, ttl=settings.state_ttl_s, replicas=copies),
        KeyValueConfig(bucket=subjects.BACKUP_BUCKET, history=5, replicas=copies),
        # Outcome records are kept past any redelivery of their intent (intents live at most
        # intents_max_age_s, 1 h), then expire on their own.
        KeyValueConfig(
            bucket=subjects.ACTUATOR_BUCKET, history=1, ttl=ACTUATOR_RECORD_TTL_S, replicas=copies
        ),
        KeyValueConfig(bucket=subjects.POLICY_BUCKET, history=10, replicas=copies),
        # Delivery records must outlive any redelivery of their event (the stream keeps 30 days).
        KeyValueConfig(bucket=subjects.NOTIFIER_BUCKET, history=1, ttl=31 * 24 * 3600.0, replicas=copies),
        # Group membership, id and IP reservations, action locks: no TTL (a clone lives
        # as long as it lives; locks carry their own expiry). A little history for audit.
        KeyValueConfig(bucket=subjects.GROUPS_BUCKET, history=5, replicas=copies),
    ]


# Every bucket by name, at the default settings.
BUCKETS: dict[str, KeyValueConfig] = {config.bucket: config for config in bucket_configs(StreamSettings())}


class ReplicasError(RuntimeError):
    """More copies were asked for than the NATS servers can hold."""


# JetStream's answers when it cannot place the copies asked for.
_NO_PLACEMENT = {10005: "no suitable peers for placement", 10074: "replicas > 1 need a cluster"}


def cluster_size(server_info: dict[str, Any]) -> int:
    """How many servers the cluster the client reached has, from the server's INFO: a
    clustered server lists every member's client URL (itself included) in connect_urls."""
    if not server_info.get("cluster"):
        return 1
    return max(1, len(server_info.get("connect_urls") or ()))


def check_replicas(replicas: int, server_info: dict[str, Any]) -> None:
    """Refuse, saying why, to ask for more copies than there are servers."""
    servers = cluster_size(server_info)
    if replicas > servers:
        where = (
            f"the cluster {server_info['cluster']!r} has {servers} server(s)"
            if server_info.get("cluster")
            else f"the server {server_info.get('server_name', '?')!r} is not part of a cluster"
        )
        raise ReplicasError(
            f"NATS.replicas is {replicas} but {where}; each copy needs its own server. "
            f"Set NATS.replicas to at most {servers}, or add servers to the cluster"
        )


async def provision(
    js: Any,
    settings: StreamSettings | None = None,
    consumers: Iterable[tuple[str, ConsumerConfig]] = (),
    *,
    server_info: dict[str, Any] | None = None,
) -> None:
    """Create or update every stream, the shared decider consumer and every bucket; then
    create or update `consumers` (stream, config), e.g. the actuators' per-node ones.

    With `server_info` (the connection's INFO) the replicas asked for are first checked
    against the cluster's size; the server's own refusal is explained the same way."""
    settings = settings or StreamSettings()
    if server_info is not None:
        check_replicas(settings.replicas, server_info)
    try:
        for config in stream_configs(settings):
            await _ensure_stream(js, config)
        await _ensure_consumer(js, subjects.METRICS_STREAM, decider_consumer_config(settings))
        for bucket in bucket_configs(settings):
            await _ensure_bucket(js, bucket)
    except APIError as exc:
        if exc.err_code not in _NO_PLACEMENT:
            raise
        raise ReplicasError(
            f"NATS cannot keep {settings.replicas} copies of each stream and bucket "
            f"({_NO_PLACEMENT[exc.err_code]}: {exc.description}); set NATS.replicas to no more "
            "than the number of JetStream servers that are up"
        ) from exc
    for stream, consumer in consumers:
        await js.add_consumer(stream, consumer)  # create, or update to these settings
        log.info("consumer %s in place", consumer.durable_name, extra={"event": "consumer_ready"})


class NotProvisionedError(RuntimeError):
    """What a service needs is missing or set up differently; only `setup` may fix it."""


SETUP_HINT = (
    "run `lxc-autoscale setup` as the NATS setup user (admin) with the same configuration "
    "(and `--node NODE` for each actuator's node); services never create or change "
    "streams, consumers or buckets"
)


async def verify(
    js: Any,
    *,
    service: str,
    streams: Sequence[str] = (),
    consumers: Sequence[tuple[str, ConsumerConfig]] = (),
    buckets: Sequence[str] = (),
    settings: StreamSettings | None = None,
) -> None:
    """Check that each named stream, consumer and bucket exists with the settings
    `provision` gives it; raise NotProvisionedError listing every difference."""
    expected = {
        config.name: _fields(config, STREAM_FIELDS) for config in stream_configs(settings or StreamSettings())
    }
    bucket_settings = {config.bucket: config for config in bucket_configs(settings or StreamSettings())}
    for bucket in buckets:
        expected[f"KV_{bucket}"] = _bucket_fields(bucket_settings[bucket])
    problems: list[str] = []
    for name in [*streams, *(f"KV_{bucket}" for bucket in buckets)]:
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            what = f"bucket {name[3:]}" if name.startswith("KV_") else f"stream {name}"
            problems.append(f"{what} does not exist")
            continue
        problems += _differences(f"stream {name}", info.config, {**UNTOUCHED, **expected[name]})
    for stream, config in consumers:
        try:
            info = await js.consumer_info(stream, config.durable_name)
        except NotFoundError:
            problems.append(f"consumer {config.durable_name} on stream {stream} does not exist")
            continue
        problems += _differences(
            f"consumer {config.durable_name}", info.config, _fields(config, CONSUMER_FIELDS)
        )
    if problems:
        raise NotProvisionedError(f"{service} cannot start: {'; '.join(problems)}. To fix: {SETUP_HINT}")
    READINESS.mark(PROVISIONING_VERIFIED, True)


# The settings a service relies on; limits an operator may tune (sizes, replicas) are not checked.
STREAM_FIELDS = ("subjects", "retention", "max_age", "max_msgs_per_subject", "discard", "duplicate_window")
CONSUMER_FIELDS = ("filter_subject", "ack_policy", "deliver_policy", "ack_wait", "max_deliver", "backoff")
# Nothing may feed, copy or close our streams behind the services' backs.
UNTOUCHED: dict[str, Any] = {
    "sources": None, "mirror": None, "subject_transform": None, "republish": None, "sealed": False,
}  # fmt: skip


def _fields(config: Any, names: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(config, name) for name in names if getattr(config, name) is not None}


def _bucket_fields(config: KeyValueConfig) -> dict[str, Any]:
    """What `create_key_value` derives from a bucket's config and the services rely on."""
    fields: dict[str, Any] = {"subjects": [f"$KV.{config.bucket}.>"], "max_msgs_per_subject": config.history}
    if config.ttl:
        fields["max_age"] = config.ttl
    return fields


def _differences(what: str, actual: Any, expected: dict[str, Any]) -> list[str]:
    found = []
    for field, want in expected.items():
        have = getattr(actual, field)
        if not _same(want, have):
            found.append(f"{what} has {field} {_shown(have)}, expected {_shown(want)}")
    return found


def _shown(value: Any) -> str:
    return str(value.value) if hasattr(value, "value") else repr(value)


def _same(want: Any, have: Any) -> bool:
    if want is None or want is False:
        return not have  # absent, empty or off
    if isinstance(want, float) or isinstance(have, float):
        return have is not None and abs(float(want) - float(have)) < 1e-3
    if isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
        return all(_same(w, h) for w, h in zip(want, have, strict=True))
    return bool(want == have)


async def _ensure_stream(js: Any, config: StreamConfig) -> None:
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            log.info("created stream %s", config.name, extra={"event": "stream_created"})
            return
        except BadRequestError:
            pass  # another replica created it between our two calls
    # Retention cannot change on an existing stream; everything else we keep in step.
    await js.update_stream(config)


async def _ensure_consumer(js: Any, stream: str, config: ConsumerConfig) -> None:
    try:
        await js.consumer_info(stream, config.durable_name)
    except NotFoundError:
        await js.add_consumer(stream, config)
        log.info("created consumer %s", config.durable_name, extra={"event": "consumer_created"})


async def _ensure_bucket(js: Any, config: KeyValueConfig) -> None:
    try:
        await js.key_value(config.bucket)
    except NotFoundError:  # nats-py raises its subclass BucketNotFoundError
        await js.create_key_value(config)
        log.info("created bucket %s", config.bucket, extra={"event": "bucket_created"})
        return
    # A bucket is a stream: its TTL is the stream's max_age (kept in step, as for streams),
    # and a bucket made on a single server keeps its data when it grows to the cluster's copies.
    info = await js.stream_info(f"KV_{config.bucket}")
    wanted_ttl = config.ttl or 0.0
    if (info.config.max_age or 0.0) != wanted_ttl or info.config.num_replicas != config.replicas:
        await js.update_stream(
            dataclasses.replace(info.config, max_age=wanted_ttl, num_replicas=config.replicas)
        )
        log.info(
            "bucket %s now has %d copies, ttl %ss",
            config.bucket,
            config.replicas,
            wanted_ttl,
            extra={"event": "bucket_updated"},
        )
