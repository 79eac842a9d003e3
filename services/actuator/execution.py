"""Run one validated command through an executor, retrying transient failures (tenacity)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

from services.actuator import metrics
from services.actuator.executors.base import Executor
from services.actuator.result import CommandResult
from services.actuator.retry import Classification, RetryPolicy, classify

log = logging.getLogger(__name__)

OnRetry = Callable[[int, Classification], Awaitable[None]]


@dataclass(frozen=True)
class Attempted:
    result: CommandResult
    classification: Classification
    attempts: int


async def run_with_retries(
    executor: Executor,
    argv: tuple[str, ...],
    policy: RetryPolicy,
    *,
    on_retry: OnRetry | None = None,
    before_attempt: Callable[[], Awaitable[None]] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Attempted:
    """Transient failures are retried with exponential back-off and jitter, up to
    `policy.max_attempts`; permanent ones return at once. Never raises for a failed command;
    `before_attempt` may raise to stop before the next attempt starts."""
    label = argv[1] if len(argv) > 1 else argv[0]

    async def attempt() -> CommandResult:
        if before_attempt is not None:
            await before_attempt()
        return await executor.run(argv, policy.command_timeout_s)

    return await retry_attempts(attempt, label, policy, on_retry=on_retry, sleep=sleep)


async def retry_attempts(
    attempt: Callable[[], Awaitable[CommandResult]],
    label: str,
    policy: RetryPolicy,
    *,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Attempted:
    """`run_with_retries` for any attempt that reports a `CommandResult` (a command, a file read)."""

    async def before_sleep(state: RetryCallState) -> None:
        result: CommandResult = state.outcome.result() if state.outcome else CommandResult(None)
        verdict = classify(result)
        metrics.RETRIES.labels(label).inc()
        log.warning(
            "transient failure, retrying",
            extra={
                "event": "command_retry",
                "command": label,
                "attempt": state.attempt_number,
                "detail": verdict.code,
                "error": verdict.message,
            },
        )
        if on_retry is not None:
            await on_retry(state.attempt_number, verdict)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts),
        wait=wait_exponential_jitter(
            multiplier=policy.initial_backoff_s, max=policy.max_backoff_s, jitter=policy.jitter_s
        ),
        retry=retry_if_result(lambda result: classify(result).transient),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    attempts = 0

    async def counted() -> CommandResult:
        nonlocal attempts
        attempts += 1
        with metrics.COMMAND_SECONDS.labels(label).time():
            return await attempt()

    result: CommandResult = await retrying(counted)
    return Attempted(result=result, classification=classify(result), attempts=attempts)
