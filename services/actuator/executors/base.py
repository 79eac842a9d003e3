"""The capability every executor offers: run one argument list with a time limit."""

from __future__ import annotations

from typing import Protocol

from services.actuator.result import CommandResult


class Executor(Protocol):
    async def run(self, argv: tuple[str, ...], timeout_s: float) -> CommandResult:
        """Run `argv` (already validated) and report; never raises for command failures."""
        ...

    async def close(self) -> None:
        """Release connections; safe to call more than once."""
        ...
