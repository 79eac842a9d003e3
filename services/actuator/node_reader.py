"""What a group operation reads from the cluster: configs of any node, status, free ids.

Configs are read as files (`<root>/etc/pve/nodes/<node>/lxc/<vmid>.conf`, locally or over
SFTP): pmxcfs shows every node's configs on every node, so one read answers "does any
node have this id", "where is this clone now" and "what is this member's net0" without
running pct. Whether a container runs needs `pct status` on its own node, or `pvesh get
/nodes/<node>/lxc/<vmid>/status/current` for a container of another node (pvesh proxies
it there); whether an id is free cluster-wide `pvesh get /cluster/nextid --vmid N`
(Proxmox's own check against its vmlist).
"""

from __future__ import annotations

import os
import re

from services.actuator.commands import check_pct_path, check_vmid
from services.actuator.config_reader import MAX_CONF_BYTES, ConfigFiles
from services.actuator.ct_view import CtView, parse_ct
from services.actuator.execution import OnRetry, run_with_retries
from services.actuator.executors.base import Executor
from services.actuator.group_commands import group_argv, on_node, status
from services.actuator.pvesh_result import current_status
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

    async def find(self, vmid: int, nodes: tuple[str, ...]) -> tuple[str, CtView] | None:
        """The first of `nodes` whose lxc dir holds `vmid`, with its config (a clone made
        with `--target` lives on the source's node while it copies, then on the target)."""
        for node in nodes:
            view = await self.config(node, vmid)
            if view is not None:
                return node, view
        return None

    async def running(self, vmid: int, on_retry: OnRetry, node: str | None = None) -> bool:
        """Whether `vmid` runs: `pct status` on this node, or, with `node` (another node),
        `pvesh get /nodes/<node>/lxc/<vmid>/status/current`, which Proxmox proxies there."""
        operation = status(vmid) if node is None else on_node(node, status(vmid))
        argv = group_argv(operation, self._pct, self._pvesh)
        what = f"pct status {vmid}" if node is None else f"pvesh get {argv[2]}"
        done = await run_with_retries(self._executor, argv, self._policy, on_retry=on_retry)
        _raise_unless_ok(done.classification, what)
        if node is not None:
            state = current_status(done.result.stdout)
        else:
            found = _STATUS.search(done.result.stdout)
            state = found.group(1) if found is not None else None
        if state not in ("running", "stopped"):
            raise ReadRefused("status-unreadable", f"{what} printed no status")
        return state == "running"

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
