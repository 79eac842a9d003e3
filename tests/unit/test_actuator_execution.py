"""Retries with tenacity: scripted executors, no sleeping."""

from __future__ import annotations

from services.actuator.execution import run_with_retries
from services.actuator.result import CommandResult
from services.actuator.retry import Classification, ResultKind, RetryPolicy

LOCKED = CommandResult(255, stderr="CT is locked (backup)")
OK = CommandResult(0, stdout="done")
MISSING = CommandResult(255, stderr="Configuration file 'nodes/pve1/lxc/5.conf' does not exist")


class ScriptedExecutor:
    def __init__(self, *results: CommandResult) -> None:
        self.results = list(results)
        self.calls = 0

    async def run(self, argv: tuple[str, ...], timeout_s: float) -> CommandResult:
        self.calls += 1
        return self.results.pop(0) if len(self.results) > 1 else self.results[0]

    async def close(self) -> None:
        return None


async def no_sleep(seconds: float) -> None:
    waits.append(seconds)


waits: list[float] = []
POLICY = RetryPolicy(max_attempts=4, initial_backoff_s=0.5, max_backoff_s=1.0, jitter_s=0.1)


async def test_transient_failures_are_retried_with_growing_waits_until_success() -> None:
    waits.clear()
    reports: list[tuple[int, str]] = []

    async def on_retry(attempt: int, verdict: Classification) -> None:
        reports.append((attempt, verdict.code))

    done = await run_with_retries(
        ScriptedExecutor(LOCKED, LOCKED, OK), ("pct",), POLICY, on_retry=on_retry, sleep=no_sleep
    )
    assert (done.classification.kind, done.attempts) == (ResultKind.OK, 3)
    assert reports == [(1, "locked"), (2, "locked")]
    assert 0.5 <= waits[0] <= 0.6 and 1.0 <= waits[1] <= 1.0  # capped at max_backoff_s


async def test_retries_stop_at_the_attempt_limit_with_the_last_failure() -> None:
    executor = ScriptedExecutor(LOCKED)
    done = await run_with_retries(executor, ("pct",), POLICY, sleep=no_sleep)
    assert (done.classification.code, done.attempts, executor.calls) == ("locked", 4, 4)


async def test_a_permanent_failure_is_not_retried() -> None:
    executor = ScriptedExecutor(MISSING, OK)
    done = await run_with_retries(executor, ("pct",), POLICY, sleep=no_sleep)
    assert (done.classification.code, done.attempts, executor.calls) == ("unknown-container", 1, 1)


async def test_back_off_grows_exponentially_and_is_capped() -> None:
    waits.clear()
    policy = RetryPolicy(max_attempts=5, initial_backoff_s=0.5, max_backoff_s=3, jitter_s=0.5)
    await run_with_retries(ScriptedExecutor(LOCKED), ("pct",), policy, sleep=no_sleep)
    lows, highs = [0.5, 1.0, 2.0, 3.0], [1.0, 1.5, 2.5, 3.0]
    assert all(low <= wait <= high for low, wait, high in zip(lows, waits, highs, strict=True))


async def test_the_retry_budget_counts_every_attempt_timing_out() -> None:
    # Worst case for one command: every attempt runs to its timeout, with a wait between two.
    waits.clear()
    executor = ScriptedExecutor(CommandResult(None, timed_out=True))
    done = await run_with_retries(executor, ("pct",), POLICY, sleep=no_sleep)
    assert (done.classification.code, executor.calls, len(waits)) == ("timeout", 4, 3)
