"""The API double's guest lifecycle endpoints: snapshots, clone, destroy, current status.

Each handler follows its Proxmox method: the method's permission check, then the
parameters (`additionalProperties => 0`), then what the method does before
`fork_worker` (an error there is the call's own 500), then a `vz…` task that runs the
simulated pct's own code (`simnode.snapshot`, `simnode.clone`), so pct and the API
change one node the same way. See docs/fidelity.md, "Proxmox API double".

  GET    /nodes/{node}/lxc/{vmid}/snapshot            API2/LXC/Snapshot.pm list
  POST   /nodes/{node}/lxc/{vmid}/snapshot            ... snapshot (task vzsnapshot)
  DELETE /nodes/{node}/lxc/{vmid}/snapshot/{snapname} ... delsnapshot (task vzdelsnapshot)
  POST   /nodes/{node}/lxc/{vmid}/clone               API2/LXC.pm clone_vm (task vzclone)
  DELETE /nodes/{node}/lxc/{vmid}                     ... destroy_vm (task vzdestroy)
  GET    /nodes/{node}/lxc/{vmid}/status/current      API2/LXC/Status.pm vm_status
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from simnode import access, clone, conffile, pct, schema, snapshot
from simnode.pctbase import check_params

if TYPE_CHECKING:
    from simnode.api import ProxmoxApiDouble

# `vmstatus` fields that are numbers in the API's JSON (pct prints them as text).
_NUMERIC_STATUS = (
    "cpus", "disk", "diskread", "diskwrite", "maxdisk", "maxmem", "maxswap", "mem", "netin", "netout",
    "pid", "swap", "uptime", "template", "vmid",
)  # fmt: skip


class PermissionCheckFailed(access.PermissionDenied):
    """`raise_perm_exc()` without a path: what an `or` of checks that all failed says."""

    def __init__(self) -> None:
        Exception.__init__(self, "Permission check failed")


def _allowed(params: dict[str, str], names: tuple[str, ...]) -> None:
    """`additionalProperties => 0`: every other parameter is a 400 of its own."""
    unknown = {name: "property is not defined in schema" for name in params if name not in names}
    if unknown:
        raise pct.ParamError("Parameter verification failed.", unknown)


def _missing(name: str) -> pct.ParamError:
    message = "property is missing and it is not optional"
    return pct.ParamError("Parameter verification failed.", {name: message})


def _flags(api: ProxmoxApiDouble, params: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """Boolean parameters as pct's getopt passes them ("1"/"0"), type-checked."""
    return {name: "1" if api.flag(params, name) else "0" for name in names if name in params}


def _audited(
    api: ProxmoxApiDouble, who: str, params: dict[str, str], node: str, vmid: str
) -> tuple[pct.Ctx, int, conffile.ParsedConf]:
    """A read-only method: `VM.Audit`, no parameters, then `load_config` (the CT exists)."""
    api.access().check(who, f"/vms/{vmid}", ("VM.Audit",))
    root = api.node_root(node)
    _allowed(params, ())
    number = api.vmid(vmid)
    ctx = pct.Ctx(root)
    return ctx, number, pct._load(ctx, number)


def list_snapshots(api: ProxmoxApiDouble, who: str, params: dict[str, str], node: str, vmid: str) -> Any:
    ctx, number, conf = _audited(api, who, params, node, vmid)
    entries: list[dict[str, Any]] = []
    for name, section in conf.snapshots.items():
        item: dict[str, Any] = {
            "name": name, "snaptime": int(section.keys.get("snaptime") or 0),
            "description": section.description or "",
        }  # fmt: skip
        if section.keys.get("parent") is not None:
            item["parent"] = section.keys["parent"]
        if section.keys.get("snapstate"):
            item["snapstate"] = section.keys["snapstate"]
        entries.append(item)
    current: dict[str, Any] = {
        "name": "current", "digest": conf.digest, "running": int(pct._running(ctx, number)),
        "description": "You are here!",
    }  # fmt: skip
    if conf.main.keys.get("parent") is not None:
        current["parent"] = conf.main.keys["parent"]
    entries.append(current)
    return entries


def create_snapshot(api: ProxmoxApiDouble, who: str, params: dict[str, str], node: str, vmid: str) -> str:
    api.access().check(who, f"/vms/{vmid}", ("VM.Snapshot",))
    root = api.node_root(node)
    _allowed(params, ("snapname", "description"))
    if "snapname" not in params:
        raise _missing("snapname")
    pos = [vmid, params["snapname"]]
    number, _ = snapshot.check_snapshot_request(pos)  # reserved names die before the task
    opts = {"description": params["description"]} if params.get("description") else {}
    return api.fork_worker(
        node, "vzsnapshot", str(number), who, lambda stop: snapshot.cmd_snapshot(pct.Ctx(root), opts, pos)
    ).upid


def delsnapshot(
    api: ProxmoxApiDouble, who: str, params: dict[str, str], node: str, vmid: str, snapname: str
) -> str:
    api.access().check(who, f"/vms/{vmid}", ("VM.Snapshot",))
    root = api.node_root(node)
    _allowed(params, ("force",))
    _flags(api, params, ("force",))
    pos = [vmid, snapname]
    check_params({"vmid": schema.check_vmid(vmid), "snapname": schema.check_snapname(snapname)})
    number = int(vmid)
    # The task takes the guest migration lock, then `snapshot_delete` (no replication here).
    return api.fork_worker(
        node, "vzdelsnapshot", str(number), who, lambda stop: snapshot.cmd_delsnapshot(pct.Ctx(root), {}, pos)
    ).upid


def clone_guest(api: ProxmoxApiDouble, who: str, params: dict[str, str], node: str, vmid: str) -> str:
    rights = api.access()
    rights.check(who, f"/vms/{vmid}", ("VM.Clone",))
    newid, pool = params.get("newid", ""), params.get("pool")
    if not rights.has(who, f"/vms/{newid}", "VM.Allocate") and not (
        pool is not None and rights.has(who, f"/pool/{pool}", "VM.Allocate")
    ):
        raise PermissionCheckFailed()
    root = api.node_root(node)
    names = ("newid", "hostname", "description", "pool", "snapname", "storage", "full", "target", "bwlimit")
    _allowed(params, names)
    if "newid" not in params:
        raise _missing("newid")
    opts = {k: v for k, v in params.items() if k not in ("newid", "full")}
    opts.update(_flags(api, params, ("full",)))

    def check_storage(sid: str) -> None:
        rights.check(who, f"/storage/{sid}", ("Datastore.AllocateSpace",))

    ctx = pct.Ctx(root, check_storage=check_storage)
    job = clone.prepare_clone(ctx, opts, [vmid, newid])

    def work(stop: threading.Event) -> None:
        clone.run_clone_task(pct.Ctx(root, stop=stop), job)

    return api.fork_worker(node, "vzclone", str(job.vmid), who, work).upid


def destroy_guest(api: ProxmoxApiDouble, who: str, params: dict[str, str], node: str, vmid: str) -> str:
    api.access().check(who, f"/vms/{vmid}", ("VM.Allocate",))
    root = api.node_root(node)
    _allowed(params, ("force", "purge", "destroy-unreferenced-disks"))
    opts = _flags(api, params, ("force", "purge", "destroy-unreferenced-disks"))
    number = api.vmid(vmid)
    ctx = pct.Ctx(root)
    clone.check_destroy(ctx, number, opts)
    return api.fork_worker(
        node, "vzdestroy", str(number), who, lambda stop: clone.run_destroy_task(pct.Ctx(root), number, opts)
    ).upid


def current_status(api: ProxmoxApiDouble, who: str, params: dict[str, str], node: str, vmid: str) -> Any:
    ctx, number, conf = _audited(api, who, params, node, vmid)  # "test if VM exists"
    status: dict[str, Any] = {}
    for key, value in pct.verbose_status(ctx, number, conf, pct._running(ctx, number)).items():
        status[key] = int(value) if key in _NUMERIC_STATUS and value.isdigit() else value
    status["cpu"] = 0  # vmstatus has it; pct's status command is what leaves it out
    status["ha"] = {"managed": 0}  # `get_service_status` of a CT no HA resource lists
    return status
