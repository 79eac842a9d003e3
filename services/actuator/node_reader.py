"""What a group operation reads from the cluster: configs of any node, status, free ids.

Configs are read as files (`<root>/etc/pve/nodes/<node>/lxc/<vmid>.conf`, locally or over
SFTP): pmxcfs shows every node's configs on every node, so one read answers "does any
node have this id" and "what is this member's net0" without running pct. Whether a
container runs needs `pct status`, whether an id is free cluster-wide `pvesh get
/cluster/nextid --vmid N` (Proxmox's own check against its vmlist).
"""

from __future__ import annotations

import os
import re

from services.actuator.commands import check_pct_path, check_vmid
from services.actuator.config_reader import MAX_CONF_BYTES, ConfigFiles
from services.actuator.ct_view import CtView, parse_ct
from services.actuator.execution import OnRetry, run_with_retries
from services.actuator.executors.base import Executor
from services.actuator.group_commands import group_argv, status
from services.actuator.retry import Classification, ResultKind, RetryPolicy
from shared.validation import check_node_name

_STATUS = re.compile(r"^status:\s*(running|stopped)\s*$", re.MULTILINE)
GUEST_DIRS = ("lxc", "qemu-server")  # ids are shared by containers and VMs


class NodeUnreadable(ConnectionError):
    """The node could not be read now; the intent is tried again later (nak)."""


class ReadRefused(Exception):
    """A read failed for good (pvesh missing, no permission): the step fails with `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class NodeReader:
    def __init__(
        self,
        *,
        executor: Executor,
        files: ConfigFiles,
        root: str,
        pct_path: str,
        pvesh_path: str,
        policy: RetryPolicy,
    ) -> None:
        self._executor = executor
        self._files = files
        self._pve = os.path.join(root, "etc", "pve")
        self._pct = check_pct_path(pct_path)
        self._pvesh = check_pct_path(pvesh_path)
        self._policy = policy

    async def config(self, node: str, vmid: int, kind: str = "lxc") -> CtView | None:
        """The container's config as it is now; None when the file does not exist."""
        path = os.path.join(self._pve, "nodes", check_node_name(node), kind, f"{check_vmid(vmid)}.conf")
        try:
            data = await self._files.read_file(path, MAX_CONF_BYTES, self._policy.command_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise NodeUnreadable(f"cannot read {path}: {exc}") from exc
        return parse_ct(data.decode("utf-8", errors="replace")) if data is not None else None

    async def exists_anywhere(self, vmid: int, nodes: tuple[str, ...]) -> bool:
        for node in nodes:
            for kind in GUEST_DIRS:
                if await self.config(node, vmid, kind) is not None:
                    return True
        return False

    async def running(self, vmid: int, on_retry: OnRetry) -> bool:
        done = await run_with_retries(
            self._executor, group_argv(status(vmid), self._pct), self._policy, on_retry=on_retry
        )
        _raise_unless_ok(done.classification, f"pct status {vmid}")
        found = _STATUS.search(done.result.stdout)
        if found is None:
            raise ReadRefused("status-unreadable", f"pct status {vmid} printed no status line")
        return found.group(1) == "running"

    async def id_free(self, vmid: int, on_retry: OnRetry) -> bool:
        """Proxmox's answer: the id is returned when free, a 400 `already exists` when not."""
        argv = (self._pvesh, "get", "/cluster/nextid", "--vmid", str(check_vmid(vmid)))
        done = await run_with_retries(self._executor, argv, self._policy, on_retry=on_retry)
        if done.classification.kind is ResultKind.OK:
            return done.result.stdout.strip().strip('"') == str(vmid)
        if "already exists" in done.result.stderr:
            return False
        _raise_unless_ok(done.classification, "pvesh get /cluster/nextid")
        return False


def _raise_unless_ok(verdict: Classification, what: str) -> None:
    if verdict.kind is ResultKind.TRANSIENT:
        raise NodeUnreadable(f"{what}: {verdict.message}")
    if verdict.kind is ResultKind.PERMANENT:
        raise ReadRefused(verdict.code, f"{what}: {verdict.message}")
