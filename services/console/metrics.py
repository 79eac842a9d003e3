"""The console's Prometheus metrics (every family is listed in docs/metrics.md): the
lag of every durable consumer and the age of each node's last sample, refreshed every
few seconds, so one scrape of any console shows whether the system keeps up."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONSUMER_PENDING = Gauge(
    "autoscale_consumer_pending_messages",
    "Messages in the stream not yet delivered to the durable consumer (its lag).",
    ["stream", "consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "autoscale_consumer_ack_pending_messages",
    "Messages delivered to the durable consumer and not yet acknowledged.",
    ["stream", "consumer"],
)
SAMPLE_AGE = Gauge("autoscale_node_sample_age_seconds", "Age of the latest sample of each node.", ["node"])
CONTROL_REQUESTS = Counter(
    "autoscale_console_control_requests",
    "Control requests, by action and HTTP status (401: bad or missing token).",
    ["action", "status"],
)
