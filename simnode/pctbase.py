"""What every simulated `pct` subcommand shares: the call context, Proxmox's two error
kinds, and loading a container's config the way `PVE::LXC::Config->load_config` does.

Kept apart from `simnode.pct` so the subcommand modules (simnode/snapshot.py,
simnode/clone.py) can use it without importing the CLI module (which runs as __main__).
Stdlib and stdlib-only simnode modules only: `pct` imports this on every spawn.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from simnode import conffile, paths, schema
from simnode.atomic import read_text

if TYPE_CHECKING:
    import threading


class PctError(Exception):
    """A plain `die "...\\n"`: message to stderr, exit 255."""


class ParamError(PctError):
    """A `PVE::Exception` with code 400, printed with the command's usage line."""

    def __init__(self, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or {}


ChangeCheck = Callable[[dict[str, str], list[str]], None]
StorageCheck = Callable[[str], None]


class Ctx:
    __slots__ = ("_node", "check_change", "check_storage", "out", "root", "stop")

    def __init__(
        self,
        root: str,
        check_change: ChangeCheck | None = None,
        check_storage: StorageCheck | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.root = root
        self.out: list[str] = []
        self._node: str | None = None
        # The API's privilege checks inside the handlers, which pct (root) never fails:
        # per option (`check_ct_modify_config_perm`), per storage a clone allocates on.
        self.check_change = check_change
        self.check_storage = check_storage
        # An API task's stop request (`DELETE …/tasks/{upid}`: SIGTERM to the worker); pct
        # itself gets real signals.
        self.stop = stop

    @property
    def node(self) -> str:
        if self._node is None:
            self._node = paths.node_name(self.root)
        return self._node


def load_raw(ctx: Ctx, vmid: int) -> str:
    """The local node's config of `vmid`; a CT of another node is "does not exist" here,
    as `load_config` looks only in `nodes/<local node>/lxc`."""
    try:
        return read_text(paths.conf_path(ctx.root, vmid))
    except FileNotFoundError:
        cfs = paths.cfs_conf_path(ctx.node, vmid)
        raise PctError(f"Configuration file '{cfs}' does not exist") from None


def load(ctx: Ctx, vmid: int) -> conffile.ParsedConf:
    conf = conffile.parse(load_raw(ctx, vmid), vmid)
    for warning in conf.warnings:
        sys.stderr.write(warning)
    return conf


def running(ctx: Ctx, vmid: int) -> bool:
    return os.path.isdir(paths.cgroup_dir(ctx.root, vmid))


def check_lock(conf: conffile.ParsedConf) -> None:
    """`PVE::AbstractConfig->check_lock`: the guest type, not the vmid, is printed."""
    lock = conf.main.keys.get("lock")
    if lock:
        raise PctError(f"CT is locked ({lock})")


def vmid_param(value: str, name: str = "vmid") -> int:
    err = schema.check_vmid(value)
    if err:
        raise ParamError("Parameter verification failed.", {name: err})
    return int(value)


def check_params(checks: dict[str, str | None]) -> None:
    """Raise one 400 with every failed parameter check, as JSONSchema collects them."""
    errors = {name: err for name, err in checks.items() if err}
    if errors:
        raise ParamError("Parameter verification failed.", errors)
