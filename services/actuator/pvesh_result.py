"""What a `pvesh` call on another node printed, read the way Proxmox means it. Pure.

`pvesh create …/status/start` runs the API's task in the foreground (pve-common
RESTEnvironment.pm `fork_worker`: `$sync` for the CLI) and prints the task's UPID; a task
that fails still exits 0: its error is only printed on stderr (`$tee_worker` prints the
text of `TASK ERROR: …`). Through the proxy the remote pvesh's stderr is passed on the
same way (pve-manager PVE/CLI/pvesh.pm `proxy_handler`, run_command's `errmsg`).
`pct start` exits non-zero for the same task (pct.pm `$upid_exit`), so a task error here
becomes exit 255 with that text, and the usual classification (locked: retried) applies.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace

from services.actuator.result import CommandResult

# Printed on stderr for a task that ended with warnings: the task succeeded.
_WARNINGS = re.compile(r"^Task finished with \d+ warning\(s\)!$")
TASK_FAILED_EXIT = 255


def task_result(result: CommandResult) -> CommandResult:
    """A foreground task's result as pct would report it: exit 255 when the task failed."""
    if result.exit_code != 0 or result.timed_out:
        return result
    errors = [
        line for line in result.stderr.splitlines() if line.strip() and not _WARNINGS.fullmatch(line.strip())
    ]
    if not errors:
        return result
    return replace(result, exit_code=TASK_FAILED_EXIT)


def current_status(stdout: str) -> str | None:
    """`status` of `pvesh get …/status/current --output-format json` (vm_status's object),
    None when the output is not that object."""
    try:
        data = json.loads(stdout)
    except ValueError:
        return None
    status = data.get("status") if isinstance(data, dict) else None
    return status if isinstance(status, str) else None
