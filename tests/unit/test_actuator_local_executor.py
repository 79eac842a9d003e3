"""The local executor stops a command at its timeout as coreutils `timeout -k 2` does on
the SSH path: SIGTERM to its process group (pct's task cleans up), SIGKILL 2 s later."""

from __future__ import annotations

import time
from pathlib import Path

from services.actuator.executors.local import KILL_AFTER_S, LocalExecutor

# a clone deleting its half-made container when interrupted (sh starts in milliseconds)
CLEANS_UP = 'trap \'echo cleaned up > "$0"; exit 255\' TERM; sleep 30 & wait'
IGNORES_TERM = "trap '' TERM; sleep 30"


async def test_a_command_at_its_timeout_gets_sigterm_first_and_may_clean_up(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    result = await LocalExecutor().run(("/bin/sh", "-c", CLEANS_UP, str(marker)), timeout_s=1.0)
    assert result.timed_out and result.exit_code is None
    assert marker.read_text() == "cleaned up\n"


async def test_a_command_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    started = time.monotonic()
    result = await LocalExecutor().run(("/bin/sh", "-c", IGNORES_TERM), timeout_s=0.5)
    assert result.timed_out
    assert time.monotonic() - started < 0.5 + KILL_AFTER_S + 3  # not the 30 s it wanted
