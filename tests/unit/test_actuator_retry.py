"""Retry classification, the back-off policy, and consumer timing that agrees with it."""

from __future__ import annotations

import pytest

from services.actuator.result import CommandResult
from services.actuator.retry import COMMAND_OVERRUN_S, ResultKind, RetryPolicy, classify, consumer_timing


@pytest.mark.parametrize(
    ("result", "kind", "code"),
    [
        (CommandResult(0, stdout="cores: 2"), ResultKind.OK, "ok"),
        (CommandResult(None, timed_out=True), ResultKind.TRANSIENT, "timeout"),
        (CommandResult(124), ResultKind.TRANSIENT, "timeout"),
        (CommandResult(None, connection_error="EOFError: lost"), ResultKind.TRANSIENT, "connection"),
        (CommandResult(255, stderr="CT is locked (backup)\n"), ResultKind.TRANSIENT, "locked"),
        (CommandResult(255, stderr="CT 101 is locked (migrate)\n"), ResultKind.TRANSIENT, "locked"),
        (CommandResult(255, stderr="can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout"),
         ResultKind.TRANSIENT, "locked"),
        (CommandResult(255, stderr="ssh: connect to host pve1 port 22: Connection refused"),
         ResultKind.TRANSIENT, "connection"),
        (CommandResult(255, stderr="Configuration file 'nodes/pve1/lxc/555.conf' does not exist\n"),
         ResultKind.PERMANENT, "unknown-container"),
        (CommandResult(255, stderr="400 Parameter verification failed.\ncores: invalid\n"),
         ResultKind.PERMANENT, "invalid-value"),
        (CommandResult(255, stderr="something odd"), ResultKind.PERMANENT, "command-failed"),
        (CommandResult(None, setup_error="host key mismatch", setup_code="host-key-mismatch"),
         ResultKind.PERMANENT, "host-key-mismatch"),
    ],
    ids=[
        "success", "timeout", "timeout exit", "lost connection", "locked", "locked with vmid",
        "config lock timeout", "ssh refused", "unknown container", "invalid value", "unknown error",
        "host key",
    ],
)  # fmt: skip
def test_failures_are_classified_as_transient_or_permanent(
    result: CommandResult, kind: ResultKind, code: str
) -> None:
    verdict = classify(result)
    assert (verdict.kind, verdict.code) == (kind, code)


def test_a_pct_exit_255_without_a_connection_message_is_not_mistaken_for_ssh() -> None:
    assert classify(CommandResult(255, stderr="unable to parse value")).kind is ResultKind.PERMANENT


def test_error_text_is_sanitized_for_logs_and_events() -> None:
    verdict = classify(CommandResult(1, stderr="bad\x1b[2J\nthing"))
    assert "\x1b" not in verdict.message and "\n" not in verdict.message


def test_ack_wait_outlasts_one_attempt_and_one_wait_and_progress_is_reported_in_time() -> None:
    policy = RetryPolicy(command_timeout_s=30, max_backoff_s=10, jitter_s=0.5)
    timing = consumer_timing(policy)
    assert timing.ack_wait_s > policy.command_timeout_s + policy.max_backoff_s
    assert timing.progress_every_s < timing.ack_wait_s / 2
    assert timing.backoff_s[0] == timing.ack_wait_s  # the server takes ack_wait from backoff[0]
    assert len(timing.backoff_s) <= timing.max_deliver


@pytest.mark.parametrize(("timeout_s", "backoff_max_s"), [(30, 10), (1, 0.05), (120, 0.5)])
def test_the_node_lease_holds_a_whole_command_after_a_renewal_and_outlives_ack_wait(
    timeout_s: float, backoff_max_s: float
) -> None:
    policy = RetryPolicy(command_timeout_s=timeout_s, max_backoff_s=backoff_max_s, jitter_s=0.01)
    timing = consumer_timing(policy)
    spare = timing.lease_ttl_s - (policy.command_timeout_s + COMMAND_OVERRUN_S)
    assert spare >= 2.0  # a renewal may take that long and the attempt still ends inside the lease
    assert timing.lease_ttl_s > timing.ack_wait_s  # a killed holder's intents are back when it expires
    assert timing.progress_every_s <= timing.lease_ttl_s / 3  # renewed at least three times per ttl
