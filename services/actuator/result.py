"""What an executor reports after running one command. Pure data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one attempt.

    `exit_code` is None when the command did not finish (timeout, lost transport) or never
    started. `connection_error` means the way to the host failed (worth retrying);
    `setup_error` means the executor cannot work as configured (binary missing, host key
    refused, authentication failed) and retrying would not help. The API executor
    reports a failed call as exit code 255 (as pct) with Proxmox's message in `stderr`
    and the HTTP status in `http_status`.
    """

    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    connection_error: str | None = None
    setup_error: str | None = None
    setup_code: str = "executor-error"
    duration_s: float = 0.0
    # The HTTP status of a Proxmox API call (API executor); None for commands.
    http_status: int | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out
