"""`pct snapshot`, `pct delsnapshot`, `pct listsnapshot` as pve-container runs them.

pct.pm maps them to `PVE::API2::LXC::Snapshot` (`snapshot`, `delsnapshot`, `list`); the
work is pve-guest-common `PVE::AbstractConfig`'s `snapshot_create` (`__snapshot_prepare`,
`__snapshot_commit`) and `snapshot_delete`, each step under the CT's config flock, each
writing the whole config as `write_pct_config` does. The storage's own snapshot
commands (lvcreate, zfs snapshot) leave no trace here **[simplified]**.
A task runs in the foreground under pct (`fork_worker` sync mode): what it prints and
warns goes to stdout, its error to stderr, exit 255.
"""

from __future__ import annotations

import time

from simnode import conffile, locking, paths, schema, storage
from simnode.atomic import write_atomic
from simnode.pctbase import Ctx, PctError, check_lock, check_params, load, running


def write(ctx: Ctx, vmid: int, conf: conffile.ParsedConf) -> None:
    write_atomic(paths.conf_path(ctx.root, vmid), conffile.generate(conf))


def is_template(conf: conffile.ParsedConf) -> bool:
    return conf.main.keys.get("template") == "1"


def set_lock(ctx: Ctx, vmid: int, lock: str) -> conffile.ParsedConf:
    """`AbstractConfig->set_lock`: under the flock, refuse a locked CT, then set `lock`."""
    with locking.config_lock(ctx.root, vmid):
        conf = load(ctx, vmid)
        check_lock(conf)
        conf.main.keys["lock"] = lock
        write(ctx, vmid, conf)
    return conf


def remove_lock_locked(ctx: Ctx, vmid: int, lock: str) -> None:
    """`AbstractConfig->remove_lock`'s body; the caller holds the CT's flock."""
    conf = load(ctx, vmid)
    found = conf.main.keys.get("lock")
    if not found:
        raise PctError(f"no lock found trying to remove '{lock}' lock")
    if found != lock:
        raise PctError(f"found lock '{found}' trying to remove '{lock}' lock")
    del conf.main.keys["lock"]
    write(ctx, vmid, conf)


def remove_lock(ctx: Ctx, vmid: int, lock: str) -> None:
    with locking.config_lock(ctx.root, vmid):
        remove_lock_locked(ctx, vmid, lock)


def volumes(section: conffile.Section) -> dict[str, str]:
    """`foreach_volume`: rootfs and mpN, key -> value."""
    return {
        k: v for k, v in section.keys.items() if k == "rootfs" or (k.startswith("mp") and k[2:].isdigit())
    }


def _snapshot_feature(ctx: Ctx, section: conffile.Section) -> bool:
    """`PVE::LXC::Config->has_feature('snapshot')`: every volume's storage can."""
    for value in volumes(section).values():
        volid = storage.volume_of(value)
        try:
            if not storage.is_volume(volid) or not storage.has_feature(ctx.root, "snapshot", volid, None):
                return False
        except storage.StorageError:
            return False
    return True


def _copy_config(source: conffile.Section) -> conffile.Section:
    """`__snapshot_copy_config`: everything but snapstate, snaptime, vmstate, lock,
    digest, description and unusedN."""
    skip = {"snapstate", "snaptime", "vmstate", "lock", "digest"}
    dest = conffile.Section()
    dest.keys = {k: v for k, v in source.keys.items() if k not in skip and not k.startswith("unused")}
    dest.lxc = list(source.lxc)
    return dest


def _snapname_args(pos: list[str]) -> tuple[int, str]:
    check_params({"vmid": schema.check_vmid(pos[0]), "snapname": schema.check_snapname(pos[1])})
    return int(pos[0]), pos[1]


def check_snapshot_request(pos: list[str]) -> tuple[int, str]:
    """`Snapshot::snapshot` before its task: the parameters, then the reserved names."""
    vmid, snapname = _snapname_args(pos)
    if snapname in ("current", "vzdump"):
        raise PctError(f"unable to use snapshot name '{snapname}' (reserved name)")
    return vmid, snapname


def cmd_snapshot(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> None:
    vmid, snapname = check_snapshot_request(pos)
    with locking.config_lock(ctx.root, vmid):  # __snapshot_prepare
        conf = load(ctx, vmid)
        if is_template(conf):
            raise PctError("you can't take a snapshot if it's a template")
        check_lock(conf)
        conf.main.keys["lock"] = "snapshot"
        if snapname in conf.snapshots:
            raise PctError(f"snapshot name '{snapname}' already used")
        if not _snapshot_feature(ctx, conf.main):
            raise PctError("snapshot feature is not available")
        for name in sorted(conf.snapshots):
            if conf.snapshots[name].keys.get("parent") == snapname:
                ctx.out.append(
                    f"deleting parent '{snapname}' reference from '{name}' to avoid bogus snapshot cycle.\n"
                )
                del conf.snapshots[name].keys["parent"]
        snap = _copy_config(conf.main)
        snap.keys["snapstate"] = "prepare"
        snap.keys["snaptime"] = str(int(time.time()))
        snap.description = opts.get("description") or ""
        conf.snapshots[snapname] = snap
        write(ctx, vmid, conf)
    with locking.config_lock(ctx.root, vmid):  # __snapshot_commit
        conf = load(ctx, vmid)
        if conf.main.keys.get("lock") != "snapshot":
            raise PctError("missing snapshot lock")
        made = conf.snapshots.get(snapname)
        if made is None:
            raise PctError(f"snapshot '{snapname}' does not exist")
        if made.keys.get("snapstate") != "prepare":
            raise PctError("wrong snapshot state")
        del made.keys["snapstate"]
        del conf.main.keys["lock"]
        conf.main.keys["parent"] = snapname
        write(ctx, vmid, conf)


def cmd_delsnapshot(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> None:
    vmid, snapname = _snapname_args(pos)
    conf = load(ctx, vmid)  # snapshot_delete
    if snapname not in conf.snapshots:
        raise PctError(f"snapshot '{snapname}' does not exist")
    set_lock(ctx, vmid, "snapshot-delete")

    def locked_conf() -> conffile.ParsedConf:
        conf = load(ctx, vmid)
        if conf.main.keys.get("lock") != "snapshot-delete":
            raise PctError("encountered invalid lock, expected 'snapshot-delete'")
        return conf

    with locking.config_lock(ctx.root, vmid):  # prepare
        conf = locked_conf()
        if is_template(conf):
            raise PctError("you can't delete a snapshot if vm is a template")
        if snapname not in conf.snapshots:
            raise PctError(f"snapshot '{snapname}' does not exist")
        conf.snapshots[snapname].keys["snapstate"] = "delete"
        write(ctx, vmid, conf)
    with locking.config_lock(ctx.root, vmid):  # cleanup
        conf = locked_conf()
        snap = conf.snapshots.get(snapname)
        if snap is None:
            raise PctError(f"snapshot '{snapname}' does not exist")
        new_parent = snap.keys.get("parent")
        for section in [conf.main, *(s for n, s in conf.snapshots.items() if n != snapname)]:
            if section.keys.get("parent") == snapname:  # unlink_parent
                if new_parent:
                    section.keys["parent"] = new_parent
                else:
                    del section.keys["parent"]
        del conf.snapshots[snapname]
        del conf.main.keys["lock"]
        write(ctx, vmid, conf)


def cmd_listsnapshot(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> None:
    """`Snapshot::list` printed by `PVE::GuestHelpers::print_snapshot_tree`."""
    check_params({"vmid": schema.check_vmid(pos[0])})
    vmid = int(pos[0])
    conf = load(ctx, vmid)
    entries: dict[str, dict[str, str | int | None]] = {}
    for name, snap in conf.snapshots.items():
        entries[name] = {
            "snaptime": int(snap.keys.get("snaptime") or 0),
            "description": snap.description,
            "parent": snap.keys.get("parent"),
        }
    running(ctx, vmid)  # the list reports it; the tree does not print it
    entries["current"] = {
        "snaptime": None,
        "description": "You are here!",
        "parent": conf.main.keys.get("parent"),
    }
    children: dict[str, list[str]] = {}
    roots = []
    for name, entry in entries.items():
        parent = entry["parent"]
        if isinstance(parent, str) and parent in entries:
            children.setdefault(parent, []).append(name)
        else:
            roots.append(name)

    def order(name: str) -> tuple[int, int]:
        snaptime = entries[name]["snaptime"]  # "current" (no snaptime) sorts last
        return (1, 0) if snaptime is None else (0, int(snaptime))

    def walk(prefix: str, name: str) -> None:
        entry = entries[name]
        description = str(entry["description"] or "no-description").split("\n")[0]
        stamp = entry["snaptime"]
        when = "" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(stamp)))
        width = max(30 - len(prefix), 0)
        ctx.out.append(f"{prefix} {name:<{width}} {when:<23} {description}\n")
        for child in sorted(children.get(name, []), key=order):
            walk(f" {prefix}", child)

    for name in sorted(roots, key=order):
        walk("`->", name)


def warn(ctx: Ctx, message: str) -> None:
    """A task's `warn`: the worker's stderr is its stdout under pct."""
    ctx.out.append(message)
