"""A NodeReader for an actuator that cannot read /etc/pve as files (the API executor).

The file reader answers "what does this container's config hold" and "does any node have
this id" from pmxcfs files. Here the same answers come from Proxmox's API, asked as
`pvesh get … --output-format json` argument lists that the executor runs (the API
executor maps each onto its GET call, `executors/api_calls.py`):

  config of <vmid> on <node>   GET /nodes/<node>/lxc/<vmid>/config?current=1 (the main
                               section: lock, tags, netN, hostname), and
                               GET /nodes/<node>/lxc/<vmid>/snapshot (the snapshots' names);
                               `Configuration file … does not exist` means no such container
  is <vmid> anywhere           GET /cluster/resources?type=vm (every node's guests); a
                               token sees only guests it may audit, so `/cluster/nextid`
                               (`id_free`, checked after this) stays the deciding answer

Status and free ids are asked as in NodeReader (`pct status` / pvesh argv, mapped too).
"""

from __future__ import annotations

import json
from typing import Any

from services.actuator.commands import check_vmid
from services.actuator.ct_view import CtView, view_of
from services.actuator.execution import run_with_retries
from services.actuator.executors.base import Executor
from services.actuator.node_reader import NodeReader, NodeUnreadable, ReadRefused
from services.actuator.result import CommandResult
from services.actuator.retry import ResultKind, RetryPolicy
from shared.validation import check_node_name


class _NoFiles:
    """This reader never reads files: every method that would is answered through pvesh."""

    async def read_file(self, path: str, limit: int, timeout_s: float) -> bytes | None:
        raise NodeUnreadable(f"no file access to {path} with this executor")


class PveshNodeReader(NodeReader):
    def __init__(self, *, executor: Executor, pct_path: str, pvesh_path: str, policy: RetryPolicy) -> None:
        super().__init__(
            executor=executor, files=_NoFiles(), root="/", pct_path=pct_path, pvesh_path=pvesh_path,
            policy=policy,
        )  # fmt: skip

    async def config(self, node: str, vmid: int, kind: str = "lxc") -> CtView | None:
        if kind != "lxc":
            raise ValueError(f"only container configs are read through the API, not {kind}")
        base = f"/nodes/{check_node_name(node)}/lxc/{check_vmid(vmid)}"
        main = await self._get(f"{base}/config", ("--current", "1"), missing_ok=True)
        if main is None:
            return None
        listed = await self._get(f"{base}/snapshot", (), missing_ok=True)
        if not isinstance(main, dict) or not isinstance(listed or [], list):
            raise ReadRefused("config-unreadable", f"{base}: not a config object and a snapshot list")
        snapshots = (e.get("name") for e in listed or [] if isinstance(e, dict))
        keys = {key: _text(value) for key, value in main.items() if not isinstance(value, (dict, list))}
        return view_of(keys, (name for name in snapshots if isinstance(name, str) and name != "current"))

    async def exists_anywhere(self, vmid: int, nodes: tuple[str, ...]) -> bool:
        """Whether any guest of the cluster (container or VM) has `vmid`; `nodes` is not
        needed: the resource list covers every node."""
        guests = await self._get("/cluster/resources", ("--type", "vm"))
        if not isinstance(guests, list):
            raise ReadRefused("resources-unreadable", "/cluster/resources: not a list")
        return any(isinstance(g, dict) and g.get("vmid") == check_vmid(vmid) for g in guests)

    async def _get(self, path: str, options: tuple[str, ...], *, missing_ok: bool = False) -> Any:
        """One `pvesh get` as JSON; None for a container that does not exist (`missing_ok`)."""
        argv = (self._pvesh, "get", path, *options, "--output-format", "json")
        done = await run_with_retries(self._executor, argv, self._policy)
        verdict = done.classification
        if missing_ok and verdict.code == "unknown-container":
            return None
        if verdict.kind is ResultKind.TRANSIENT:
            raise NodeUnreadable(f"pvesh get {path}: {verdict.message}")
        if verdict.kind is ResultKind.PERMANENT:
            raise ReadRefused(verdict.code, f"pvesh get {path}: {verdict.message}")
        return _json(done.result, path)


def _json(result: CommandResult, path: str) -> Any:
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise ReadRefused("config-unreadable", f"pvesh get {path} printed no JSON") from None


def _text(value: object) -> str:
    """A config value as the file holds it (the API types numbers; booleans are 0/1)."""
    return str(int(value)) if isinstance(value, bool) else str(value)
