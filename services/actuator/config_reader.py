"""Read a container's current size for the precondition and the read-back.

By default (`ACTUATOR.read_config: file`) the actuator reads `/etc/pve/lxc/<vmid>.conf`
itself — locally with `open`, over SSH through SFTP on the pooled connection — and runs
`pct` only for the change: a real `pct` is a Perl program that takes a noticeable part
of a second to start, so one process per intent instead of three is most of the
actuator's time. The file's main section is what `pct config --current` prints: the
parser stops at the first `[section]` (`[pve:pending]`, snapshots) as the collector does.

`read_config: pct` runs `pct config <vmid>` instead (the behaviour before, a fallback
for nodes where the file cannot be read); the API executor always asks the API.

Either way the answer is a `CommandResult` shaped like pct's, so `retry.classify` judges
both alike: a missing file is pct's own "Configuration file ... does not exist" (a
permanent `unknown-container`), a failed transport is a transient `connection`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

from services.actuator.commands import argv, check_vmid, read_config
from services.actuator.executors.base import Executor
from services.actuator.result import CommandResult

CONF_DIR = "etc/pve/lxc"
MAX_CONF_BYTES = 1024 * 1024  # a config is a few hundred bytes; the rest is never read


class ConfigFiles(Protocol):
    async def read_file(self, path: str, limit: int, timeout_s: float) -> bytes | None:
        """The file's first `limit` bytes; None when it does not exist. Other failures
        raise OSError (ConnectionError when the way to the host failed)."""
        ...


class LocalFiles:
    """Files of this host (the actuator runs on the node)."""

    async def read_file(self, path: str, limit: int, timeout_s: float) -> bytes | None:
        return await asyncio.wait_for(asyncio.to_thread(_read_local, path, limit), timeout_s)


def _read_local(path: str, limit: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


class ConfigReader:
    def __init__(
        self, *, node: str, executor: Executor, pct_path: str, files: ConfigFiles | None, root: str = "/"
    ) -> None:
        self._node = node
        self._executor = executor
        self._pct_path = pct_path
        self._files = files
        self._dir = os.path.join(root, CONF_DIR)

    @property
    def label(self) -> str:
        """What a retry log line calls the read."""
        return "config" if self._files is None else "config-file"

    async def read(self, vmid: int, timeout_s: float) -> CommandResult:
        if self._files is None:
            return await self._executor.run(argv(read_config(vmid), self._pct_path), timeout_s)
        path = os.path.join(self._dir, f"{check_vmid(vmid)}.conf")
        try:
            data = await self._files.read_file(path, MAX_CONF_BYTES, timeout_s)
        except TimeoutError:
            return CommandResult(None, timed_out=True)
        except PermissionError as exc:
            forbidden = f"cannot read {path}: {exc}"
            return CommandResult(None, setup_error=forbidden, setup_code="config-forbidden")
        except OSError as exc:
            return CommandResult(None, connection_error=f"cannot read {path}: {exc}")
        if data is None:
            # What pct itself prints for a container that does not exist (AbstractConfig).
            missing = f"Configuration file 'nodes/{self._node}/lxc/{vmid}.conf' does not exist\n"
            return CommandResult(255, stderr=missing)
        return CommandResult(0, stdout=data.decode("utf-8", errors="replace"))
