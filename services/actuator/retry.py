"""Which failures are worth retrying, and the retry policy as data. Pure.

Transient: the command timed out, the connection to the host failed, the container is
locked (a backup or migration holds it), or the Proxmox API answered 502/503/504/595/596
(its daemon or a proxied node did not answer). An API 500 carries the same `die` message
pct prints and is classified by that text. Permanent: the container does not exist,
Proxmox refused a value, the API refused the token (401) or a privilege (403), the
executor is misconfigured, or anything we do not recognise (retrying an unknown error
hammers a host for nothing; the `failed` event shows the text instead).
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

from services.actuator.result import CommandResult
from shared.validation import sanitize

_LOCKED = re.compile(r"\bCT (?:\d+ )?is locked\b|can't lock file '[^']*' - got timeout")
_UNKNOWN_CT = re.compile(r"Configuration file '[^']*' does not exist|\bunable to find configuration file\b")
_INVALID_VALUE = re.compile(r"400 Parameter verification failed")
# What ssh (or a wrapping shell) prints when the transport, not pct, failed.
_CONNECTION = re.compile(
    r"(?i)ssh: connect to host|connection (refused|reset|closed|timed out)|broken pipe|"
    r"kex_exchange_identification|network is unreachable|no route to host"
)
# API calls: pveproxy could not reach the API daemon or a proxied node (595/596 are its own).
_HTTP_TRANSIENT = frozenset({502, 503, 504, 595, 596})
_HTTP_PERMANENT = {401: "auth-failed", 403: "permission-denied"}
SSH_CONNECTION_EXIT = 255
TIMEOUT_EXIT = 124  # coreutils `timeout`, used to bound remote commands
# How long one attempt may outlast command_timeout_s: the SSH executor's `timeout -k 2`
# plus the second its channel waits beyond that.
COMMAND_OVERRUN_S = 3.0


def one_line(text: str, limit: int = 400) -> str:
    """Outside text for a log line or an event: whitespace runs folded, control characters gone."""
    return sanitize(" ".join(text.split()), limit=limit)


class ResultKind(enum.Enum):
    OK = "ok"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Classification:
    kind: ResultKind
    code: str  # becomes the event's `detail`, e.g. "locked", "unknown-container"
    message: str  # sanitized, safe for logs and events

    @property
    def transient(self) -> bool:
        return self.kind is ResultKind.TRANSIENT


def classify(result: CommandResult) -> Classification:
    stderr = one_line(result.stderr)
    if result.setup_error is not None:
        return Classification(ResultKind.PERMANENT, result.setup_code, one_line(result.setup_error))
    if result.timed_out or result.exit_code == TIMEOUT_EXIT:
        return Classification(
            ResultKind.TRANSIENT, "timeout", "the command did not finish in time and was killed"
        )
    if result.connection_error is not None:
        return Classification(ResultKind.TRANSIENT, "connection", one_line(result.connection_error))
    if result.exit_code == 0:
        return Classification(ResultKind.OK, "ok", "")
    if result.http_status in _HTTP_TRANSIENT:
        return Classification(ResultKind.TRANSIENT, "server-unavailable", stderr)
    if result.http_status in _HTTP_PERMANENT:
        return Classification(ResultKind.PERMANENT, _HTTP_PERMANENT[result.http_status], stderr)
    if _LOCKED.search(result.stderr):
        return Classification(ResultKind.TRANSIENT, "locked", stderr)
    if _UNKNOWN_CT.search(result.stderr):
        return Classification(ResultKind.PERMANENT, "unknown-container", stderr)
    if _INVALID_VALUE.search(result.stderr):
        return Classification(ResultKind.PERMANENT, "invalid-value", stderr)
    if result.exit_code == SSH_CONNECTION_EXIT and _CONNECTION.search(result.stderr):
        return Classification(ResultKind.TRANSIENT, "connection", stderr)
    return Classification(
        ResultKind.PERMANENT, "command-failed", stderr or f"exit status {result.exit_code} without a message"
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter: wait min(initial * 2^(n-1) + U(0, jitter), max)."""

    max_attempts: int = 4
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 10.0
    jitter_s: float = 0.5
    command_timeout_s: float = 30.0


@dataclass(frozen=True)
class ConsumerTiming:
    ack_wait_s: float
    max_deliver: int
    backoff_s: tuple[float, ...]
    progress_every_s: float
    lease_ttl_s: float  # the node lease (leadership.py): renewed every progress_every_s


def consumer_timing(policy: RetryPolicy, max_deliver: int = 5) -> ConsumerTiming:
    """JetStream timing that agrees with the retry policy.

    The handler reports progress (`+WPI`) every third of ack_wait while it works, so
    ack_wait only needs to outlast the longest single step between two reports: one
    command attempt or one back-off wait, plus a margin for the KV and publish calls.
    A crashed actuator's intent is therefore redelivered after about ack_wait, and the
    consumer back-off spaces out later redeliveries (doubling, capped at 4 x ack_wait).

    The node lease outlives ack_wait by one command's overrun: the holder renews it as
    often as it reports progress, and a renewal just before a command leaves the whole
    attempt (timeout and kill) inside the lease with ack_wait - command_timeout to spare.
    """
    ack_wait = math.ceil(policy.command_timeout_s + policy.max_backoff_s + policy.jitter_s + 2.0)
    backoff = tuple(float(ack_wait * min(2**n, 4)) for n in range(max_deliver))
    return ConsumerTiming(
        ack_wait_s=float(ack_wait),
        max_deliver=max_deliver,
        backoff_s=backoff,
        progress_every_s=ack_wait / 3,
        lease_ttl_s=ack_wait + COMMAND_OVERRUN_S,
    )
