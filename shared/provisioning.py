"""Idempotent creation of the streams, consumers and buckets the system needs.

Run by every service at start-up and by `lxc-autoscale setup`. Running it twice,
or by several replicas at once, is harmless: existing objects are kept or updated.
"""

from __future__ import annotations

import logging
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
from nats.js.errors import BadRequestError, NotFoundError

from shared import subjects

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSettings:
    intents_duplicate_window_s: float = 120.0  # NATS' default; covers publish retries
    intents_max_age_s: float = 3600.0  # an intent older than this is useless anyway
    events_max_age_s: float = 30 * 24 * 3600.0  # history for audit and late subscribers
    events_duplicate_window_s: float = 300.0
    metrics_max_age_s: float = 300.0
    metrics_per_node_kept: int = 50
    decider_ack_wait_s: float = 10.0
    decider_max_deliver: int = 5
    replicas: int = 1


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

BUCKETS: dict[str, KeyValueConfig] = {
    subjects.STATE_BUCKET: KeyValueConfig(bucket=subjects.STATE_BUCKET, history=1),
    subjects.BACKUP_BUCKET: KeyValueConfig(bucket=subjects.BACKUP_BUCKET, history=5),
    # Outcome records are kept past any redelivery of their intent (intents live at most
    # intents_max_age_s, 1 h), then expire on their own.
    subjects.ACTUATOR_BUCKET: KeyValueConfig(
        bucket=subjects.ACTUATOR_BUCKET, history=1, ttl=ACTUATOR_RECORD_TTL_S
    ),
    subjects.POLICY_BUCKET: KeyValueConfig(bucket=subjects.POLICY_BUCKET, history=10),
    # Delivery records must outlive any redelivery of their event (the stream keeps 30 days).
    subjects.NOTIFIER_BUCKET: KeyValueConfig(
        bucket=subjects.NOTIFIER_BUCKET, history=1, ttl=31 * 24 * 3600.0
    ),
}


async def provision(js: Any, settings: StreamSettings | None = None) -> None:
    """Create or update every stream, the shared decider consumer and every bucket."""
    settings = settings or StreamSettings()
    for config in stream_configs(settings):
        await _ensure_stream(js, config)
    await _ensure_consumer(js, subjects.METRICS_STREAM, decider_consumer_config(settings))
    for bucket in BUCKETS.values():
        await _ensure_bucket(js, bucket)


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
