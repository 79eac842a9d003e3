"""The container methods `pvesh` reaches under `/nodes/<node>/lxc/<vmid>/`, run on the node
that holds the container (after the proxy, simnode/pvesh_proxy.py).

They are the very API methods `pct` calls, so they share its logic (simnode/pct.py):
- `set …/config` is pve-container API2/LXC/Config.pm `update_vm` (what `pct set` runs):
  flock, `check_lock`, the schema, hot-plug; returns null.
- `create …/status/start` is API2/LXC/Status.pm `vm_start`: `CT <vmid> already running`
  before the task; the task (`fork_worker('vzstart')`) loads the config (a CT of another
  node: `Configuration file 'nodes/<node>/lxc/<vmid>.conf' does not exist`), refuses a
  template and a lock, and starts. Under the CLI the task runs in the foreground
  (pve-common RESTEnvironment.pm `fork_worker`, `$sync`): pvesh waits for it, a task
  error goes to stderr as one line (`$tee_worker`), and the UPID is returned either way,
  so pvesh exits 0 even then.
- `get …/status/current` is Status.pm `vm_status`: `load_config` ("test if VM exists"),
  then LXC.pm `vmstatus` of that CT, plus `ha` (`{managed: 0}` for a CT HA does not manage).

Stdlib and stdlib-only simnode modules only: pvesh imports this on every spawn.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from simnode import locking, pct, pctbase, schema
from simnode.getopt import BOOL

# path -> the API method behind it; `rest` is the part after /nodes/<node>/lxc/<vmid>/
PATH = re.compile(
    r"^/nodes/(?P<node>[^/]+)/lxc/(?P<vmid>[^/]+)/(?P<rest>config|status/start|status/current)/?$"
)
# Which pvesh commands have a handler for each path (PVE::API2 find_handler), and which
# of those are simulated (GET config, `vm_config`, is real but not needed here).
METHODS: dict[str, tuple[str, ...]] = {
    "config": ("get", "set"),
    "status/start": ("create",),
    "status/current": ("get",),
}
SIMULATED = frozenset({("set", "config"), ("create", "status/start"), ("get", "status/current")})
# each method's `returns` type: how the caller prints the result
RETURNS = {"config": "null", "status/start": "string", "status/current": "object"}


def option_lookup(rest: str) -> tuple[Callable[[str], str | None], Callable[[], list[str]]]:
    """The method's own parameters (besides node and vmid, which the path carries)."""
    if rest == "config":
        return pct.COMMANDS["set"][2], schema.all_set_option_names
    if rest == "status/start":
        kinds = {"skiplock": BOOL, "debug": BOOL}
        return kinds.get, lambda: sorted(kinds)
    return (lambda name: None), list


def call(ctx: pctbase.Ctx, rest: str, vmid: str, opts: dict[str, str]) -> Any:
    """Run the method on this node; its result (typed as RETURNS[rest])."""
    number = pctbase.vmid_param(vmid)
    if rest == "config":
        pct.cmd_set(ctx, opts, [str(number)])
        return None
    if rest == "status/start":
        return _vm_start(ctx, number, opts)
    return _vm_status(ctx, number)


def _vm_start(ctx: pctbase.Ctx, vmid: int, opts: dict[str, str]) -> str:
    if pctbase.running(ctx, vmid):
        raise pctbase.PctError(f"CT {vmid} already running")
    upid = task_upid(ctx.node, "vzstart", str(vmid), "root@pam")
    try:  # the task, in the foreground: its error is printed, not raised
        pct.cmd_start(ctx, opts, [str(vmid)])
    except (pctbase.PctError, locking.LockTimeout) as exc:
        sys.stderr.write(f"{exc}\n")
    return upid


def _vm_status(ctx: pctbase.Ctx, vmid: int) -> dict[str, Any]:
    conf = pctbase.load(ctx, vmid)
    running = pctbase.running(ctx, vmid)
    status: dict[str, Any] = {}
    for key, value in pct.verbose_status(ctx, vmid, conf, running).items():
        status[key] = _typed(value) if key not in ("name", "status", "type", "lock", "tags") else value
    status["cpu"] = 0  # the first reading of this process (vmstatus keeps no earlier one)
    status["ha"] = {"managed": 0}
    return status


def _typed(value: str) -> Any:
    """vmstatus computes numbers (`int(...)`), so JSON shows them unquoted."""
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def task_upid(node: str, kind: str, vmid: str, user: str) -> str:
    """`PVE::Tools::upid_encode`: `UPID:node:pid:pstart:starttime:type:id:user:` in hex."""
    pstart = int(time.monotonic() * 100)
    return f"UPID:{node}:{os.getpid():08X}:{pstart:08X}:{int(time.time()):08X}:{kind}:{vmid}:{user}:"
