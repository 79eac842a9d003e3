"""Run commands on this host: an argument list, no shell, stopped when the time is up
(SIGTERM, then SIGKILL)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

from services.actuator.result import CommandResult

_MAX_OUTPUT = 256 * 1024  # a pct config is a few hundred bytes; anything huge is cut
# SIGTERM first, SIGKILL this long after, as the SSH executor's `timeout -k 2` (within
# retry.COMMAND_OVERRUN_S). pct passes SIGTERM on to its task, which undoes its work: a
# clone unlocks its source and deletes the new container; SIGKILL would leave both locked.
KILL_AFTER_S = 2.0


class LocalExecutor:
    async def run(self, argv: tuple[str, ...], timeout_s: float) -> CommandResult:
        started = time.monotonic()
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # so a kill reaches the whole process group
            )
        except OSError as exc:
            return CommandResult(
                exit_code=None,
                setup_error=f"cannot run {argv[0]}: {exc.strerror or exc}",
                setup_code="executor-unavailable",
                duration_s=time.monotonic() - started,
            )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError:
            await _kill(process)
            return CommandResult(exit_code=None, timed_out=True, duration_s=time.monotonic() - started)
        except asyncio.CancelledError:
            await _kill(process)
            raise
        return CommandResult(
            exit_code=process.returncode,
            stdout=stdout[:_MAX_OUTPUT].decode(errors="replace"),
            stderr=stderr[:_MAX_OUTPUT].decode(errors="replace"),
            duration_s=time.monotonic() - started,
        )

    async def close(self) -> None:
        return None


async def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), KILL_AFTER_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(process.wait(), 5)
