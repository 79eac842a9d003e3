"""What `pct set` does with the options it is given, as pve-container does it.

`PVE::LXC::Config::update_pct_config` writes every change to `[pve:pending]` first;
then a stopped container gets them applied (`vmconfig_apply_pending`), and a running
one has them hot-plugged (`vmconfig_hotplug_pending`):
- fast-plug options (`$LXC_FASTPLUG_OPTIONS`: cores, hostname, tags, ...) only move
  into the current section; `cores` takes effect later, when pvestatd rebalances;
- `netN` is re-plugged at once (`update_net`), so it moves into the current section;
- cpulimit, cpuunits, memory and swap are written to the cgroup, then moved;
- anything else stays pending until the next start.
A hot-plug that fails leaves its option pending and is reported as
`unable to hotplug <opt>: <error>` (a 400 parameter error).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simnode import cgroup, conffile, faults, schema

FASTPLUG = frozenset(
    {"description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock"}
)


@dataclass
class Change:
    """The config after the change: current-section edits, the new pending section,
    and the options whose hot-plug failed."""

    updates: dict[str, str] = field(default_factory=dict)
    deletes: list[str] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def clamp_cpuunits(value: str) -> str:
    """`PVE::CGroup::clamp_cpu_shares` on cgroup v2: at most 10000, stored so."""
    return "10000" if int(value) >= 10000 else value


def update(
    root: str,
    vmid: int,
    conf: conffile.ParsedConf,
    params: dict[str, str],
    deletes: list[str],
    running: bool,
) -> Change:
    main = conf.main.keys
    pending = dict(conf.pending.keys) if conf.pending else {}
    pending_delete = schema.split_list(pending.pop("delete", ""))
    for opt in deletes:  # add_to_pending_delete
        pending.pop(opt, None)
        if opt not in pending_delete:
            pending_delete.append(opt)
    for opt, value in params.items():
        pending[opt] = value
        if opt in pending_delete:
            pending_delete.remove(opt)
    # cleanup_pending: a pending value equal to the current one, or a deletion of an
    # option that is not set, is no change at all
    pending = {k: v for k, v in pending.items() if main.get(k) != v}
    pending_delete = [k for k in pending_delete if k in main]
    modified = set(params) | set(deletes)
    change = Change()
    if running:
        _hotplug(root, vmid, pending, pending_delete, modified, change)
    else:
        for opt in [k for k in pending_delete if k in modified]:
            change.deletes.append(opt)
            pending_delete.remove(opt)
        for opt in [k for k in pending if k in modified]:
            change.updates[opt] = pending.pop(opt)
    if pending_delete:
        pending["delete"] = ",".join(pending_delete)
    change.pending = pending
    return change


def _hotplug(
    root: str,
    vmid: int,
    pending: dict[str, str],
    pending_delete: list[str],
    modified: set[str],
    change: Change,
) -> None:
    for opt in sorted(pending_delete):
        if opt not in modified:
            continue
        error = _unplug(root, vmid, opt)
        if error == "skip":
            continue
        if error:
            change.errors[opt] = f"unable to hotplug {opt}: {error}"
            continue
        change.deletes.append(opt)
        pending_delete.remove(opt)
    memory_done = False
    for opt in sorted(pending):
        if opt not in modified:
            continue
        if opt in FASTPLUG:
            change.updates[opt] = pending.pop(opt)
            continue
        if opt in ("memory", "swap") and memory_done:
            change.updates[opt] = pending.pop(opt)
            continue
        error = _plug(root, vmid, opt, pending)
        if error == "skip":
            continue
        if error:
            change.errors[opt] = f"unable to hotplug {opt}: {error}"
            continue
        memory_done = memory_done or opt in ("memory", "swap")
        change.updates[opt] = pending.pop(opt)


def _fault(root: str, vmid: int, opt: str, file: str) -> str | None:
    """An injected failure of this hot-plug, worded as `write_proc_entry` dies."""
    path = f"/sys/fs/cgroup/lxc/{vmid}/{file}"
    return faults.consume_hotplug(root, vmid, opt, f"unable to write '{path}' - Device or resource busy\n")


def _plug(root: str, vmid: int, opt: str, pending: dict[str, str]) -> str | None:
    """Hot-plug one pending value; None on success, "skip" when not hot-pluggable."""
    if opt == "cpulimit":
        error = _fault(root, vmid, opt, "cpu.max")
        if error is None:
            cgroup.change_cpu_quota(root, vmid, float(pending[opt]))
        return error
    if opt == "cpuunits":
        error = _fault(root, vmid, opt, "cpu.weight")
        if error is None:
            cgroup.change_cpu_shares(root, vmid, int(pending[opt]))
        return error
    if opt.startswith("net"):
        return None  # `update_net` re-plugs the veth at once (no traffic is simulated)
    if opt in ("memory", "swap"):
        error = _fault(root, vmid, opt, "memory.max" if opt == "memory" else "memory.swap.max")
        if error is None:
            memory = pending.get("memory")
            swap = pending.get("swap")
            cgroup.change_memory_limit(
                root, vmid, int(memory) if memory else None, int(swap) if swap is not None else None
            )
        return error
    return "skip"


def _unplug(root: str, vmid: int, opt: str) -> str | None:
    """Hot-unplug one pending deletion; None on success, "skip" when not possible live."""
    if opt in FASTPLUG:
        return None
    if opt == "swap":
        error = _fault(root, vmid, opt, "memory.swap.max")
        if error is None:
            cgroup.change_memory_limit(root, vmid, None, 0)
        return error
    if opt == "cpulimit":
        error = _fault(root, vmid, opt, "cpu.max")
        if error is None:
            cgroup.change_cpu_quota(root, vmid, None)
        return error
    if opt == "cpuunits":
        error = _fault(root, vmid, opt, "cpu.weight")
        if error is None:
            cgroup.change_cpu_shares(root, vmid, None)
        return error
    return "skip"
