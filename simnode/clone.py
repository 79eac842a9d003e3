"""`pct clone` and `pct destroy` as pve-container runs them.

`pct clone <vmid> <newid>` is `PVE::API2::LXC::clone_vm`. Before its task starts:
the source gets `lock: disk` (`set_lock`: refused if already locked), the new id's
config is created holding only `lock: create` (`create_and_lock_config`: refused if the
id exists anywhere in the cluster), then the new config is written (everything copied
but snapshots, `parent`, `pending`, `template`; each `netN` with a new MAC; no
`rootfs`/`mpN` yet), still `lock: create`. The task copies or links each volume
(taking `settings.clone_s` seconds here), adds it to the new config, removes the
source's `disk` lock, then the new config's `create` lock, and with `--target` moves
the config to that node. Any error on the way unlocks the source and deletes the new
config; SIGTERM/SIGINT/SIGHUP during the copy is such an error ("interrupted by signal").

`pct destroy <vmid>` is `destroy_vm`: protection, lock, HA and running checks, then
under the flock the config is replaced by `lock: destroyed`, the volumes freed, and
the config removed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator

from simnode import cgroup, conffile, locking, network, paths, pmxcfs, schema, settings, storage
from simnode.atomic import read_text, write_atomic
from simnode.pctbase import Ctx, ParamError, PctError, check_lock, check_params, load, running
from simnode.snapshot import is_template, remove_lock, remove_lock_locked, set_lock, volumes, warn, write

CREATE_LOCK_TIMEOUT_S = 5.0  # create_and_lock_config: lock_config_full($vmid, 5, ...)


def _pools(root: str) -> set[str]:
    """Pools of `user.cfg` (`pool:<name>:...` lines)."""
    try:
        text = read_text(paths.cluster_file(root, "user.cfg"))
    except OSError:
        return set()
    return {
        line.split(":")[1] for line in text.splitlines() if line.startswith("pool:") and line.count(":") >= 2
    }


def _clone_params(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> None:
    checks = {"vmid": schema.check_vmid(pos[0]), "newid": schema.check_vmid(pos[1])}
    formats = {
        "hostname": schema.check_dns_name,
        "snapname": schema.check_snapname,
        "storage": schema.check_storage_id,
        "target": schema.check_node_name,
    }
    for name, check in formats.items():
        if name in opts:
            checks[name] = check(opts[name])
    if "bwlimit" in opts:
        checks["bwlimit"] = schema.check_param(("number", 0, None, None, None), opts["bwlimit"])
    check_params(checks)
    pool = opts.get("pool")
    if pool is not None and pool not in _pools(ctx.root):
        raise ParamError("Parameter verification failed.", {"pool": f"pool '{pool}' does not exist"})


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """The clone task dies with "interrupted by signal" on INT/TERM/QUIT/HUP."""

    def interrupted(signum: int, frame: object) -> None:
        raise PctError("interrupted by signal")

    saved = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP):
            saved[sig] = signal.signal(sig, interrupted)
    except ValueError:  # not the main thread (the API double): no handlers to set
        pass
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _lock_and_reload(ctx: Ctx, newid: int) -> conffile.ParsedConf:
    """`$lock_and_reload`'s check, under the new CT's flock held by the caller."""
    conf = load(ctx, newid)
    if conf.main.keys.get("lock") != "create":
        raise PctError("Lost 'create' config lock, aborting.")
    return conf


def _create_and_lock(ctx: Ctx, newid: int) -> None:
    """`create_and_lock_config($newid, 0)`: the id must be free cluster-wide."""
    with locking.config_lock(ctx.root, newid, timeout=CREATE_LOCK_TIMEOUT_S):
        taken = pmxcfs.vmid_in_use(ctx.root, newid)
        if taken:
            raise PctError(taken)
        write_atomic(paths.conf_path(ctx.root, newid), "lock: create\n")


def _destroy_new(ctx: Ctx, newid: int) -> None:
    """The cleanup after a failed clone: the new config goes, if it is still ours."""
    try:
        with locking.config_lock(ctx.root, newid):
            _lock_and_reload(ctx, newid)
            os.unlink(paths.conf_path(ctx.root, newid))
    except (PctError, locking.LockTimeout, OSError) as exc:
        warn(ctx, f"Failed to remove target CT config - {exc}\n")


def _unlock_source(ctx: Ctx, vmid: int) -> None:
    try:
        remove_lock(ctx, vmid, "disk")
    except (PctError, locking.LockTimeout) as exc:
        warn(ctx, f"Failed to remove source CT config lock - {exc}\n")


class _Plan:
    """What `clone_vm` decided before its task: the new config and the volumes to copy."""

    def __init__(self) -> None:
        self.conf = conffile.ParsedConf("")
        self.mountpoints: dict[str, str] = {}
        self.full = True


class CloneJob:
    """What `clone_vm` hands its `vzclone` task: both configs are locked when it exists."""

    def __init__(
        self, vmid: int, newid: int, plan: _Plan, opts: dict[str, str], was_running: bool, target: str | None
    ) -> None:
        self.vmid, self.newid, self.plan, self.opts = vmid, newid, plan, opts
        self.was_running, self.target = was_running, target


def _plan(
    ctx: Ctx, src: conffile.ParsedConf, opts: dict[str, str], target: str | None, was_running: bool
) -> _Plan:
    plan = _Plan()
    full_opt = opts.get("full")
    plan.full = (not is_template(src)) if full_opt is None else full_opt == "1"
    store = opts.get("storage")
    if store is not None and not plan.full:
        raise PctError("parameter 'storage' not allowed for linked clones")
    snapname = opts.get("snapname")
    if snapname and snapname not in src.snapshots:
        raise PctError(f"snapshot '{snapname}' does not exist")
    section = src.snapshots[snapname] if snapname else src.main
    shared_vm = True
    new = plan.conf.main
    for opt in sorted(section.keys):
        value = section.keys[opt]
        if opt.startswith("unused"):
            continue
        if opt in volumes(section):
            shared_vm = _check_volume(ctx, opt, value, plan.full, opts, target, was_running) and shared_vm
            plan.mountpoints[opt] = value
        elif schema.is_net_key(opt):
            new.keys[opt] = network.with_new_mac(ctx.root, value)  # "always change MAC! address"
        else:
            new.keys[opt] = value
    if target and not shared_vm:
        raise PctError(f"can't clone CT to node '{target}' (CT uses local storage)")
    new.keys["lock"] = "create"
    for key in ("parent", "snaptime", "snapstate", "template"):
        new.keys.pop(key, None)
    new.lxc = list(section.lxc)
    new.description = section.description
    if opts.get("hostname"):
        new.keys["hostname"] = opts["hostname"]
    if opts.get("description"):
        new.description = opts["description"]
    return plan


def _check_volume(
    ctx: Ctx, opt: str, value: str, full: bool, opts: dict[str, str], target: str | None, was_running: bool
) -> bool:
    """clone_vm's checks of one rootfs/mpN volume; returns whether its storage is shared."""
    volid = storage.volume_of(value)
    if not storage.is_volume(volid):
        raise PctError(f"unable to clone mountpoint '{opt}' (type bind)")
    store = opts.get("storage")
    sid = store if store is not None else storage.split_volid(volid)[0]
    shared = storage.is_shared(storage.check_enabled(ctx.root, sid))
    if not shared and target:
        sys.stderr.write(f"found non-shared volume: {volid}\n")
    if ctx.check_storage is not None:  # `$rpcenv->check(..., "/storage/$sid", ['Datastore.AllocateSpace'])`
        ctx.check_storage(sid)
    snapname = opts.get("snapname")
    if full:
        if was_running and not snapname:
            raise PctError("Full clone of a running container is only possible from a snapshot")
    elif not storage.has_feature(ctx.root, "clone", volid, snapname):
        raise PctError(f"Linked clone feature for '{volid}' is not available")
    return shared


def cmd_clone(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> None:
    run_clone_task(ctx, prepare_clone(ctx, opts, pos))


def prepare_clone(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> CloneJob:
    """`clone_vm` up to `fork_worker`: checks, the source's `disk` lock, the new `create`
    config; an error here is the call's own error (the API answers it, no task)."""
    _clone_params(ctx, opts, pos)
    vmid, newid = int(pos[0]), int(pos[1])
    target = opts.get("target")
    if target in (ctx.node, "localhost"):
        target = None
    if target and not pmxcfs.node_exists(ctx.root, target):
        raise PctError(f"no such cluster node '{target}'")
    store = opts.get("storage")
    try:
        if store is not None:
            scfg = storage.check_enabled(ctx.root, store)
            if target and not storage.is_shared(scfg):
                raise PctError(f"can't clone to non-shared storage '{store}'")
        src = set_lock(ctx, vmid, "disk")
    except storage.StorageError as exc:
        raise PctError(str(exc)) from None
    try:
        _create_and_lock(ctx, newid)
    except (PctError, locking.LockTimeout):
        _unlock_source(ctx, vmid)
        raise
    was_running = running(ctx, vmid)
    try:
        plan = _plan(ctx, src, opts, target, was_running)
        with locking.config_lock(ctx.root, newid):
            _lock_and_reload(ctx, newid)
            write(ctx, newid, plan.conf)
    except Exception as exc:  # the API's 403 on a storage too: cleaned up, then reported
        _unlock_source(ctx, vmid)
        _destroy_new(ctx, newid)
        if isinstance(exc, (PctError, storage.StorageError, locking.LockTimeout)):
            raise PctError(str(exc)) from None
        raise
    return CloneJob(vmid, newid, plan, opts, was_running, target)


def _copy(ctx: Ctx, seconds: float) -> None:
    """The time a volume copy takes. A stopped API task ends it as SIGTERM does under pct."""
    if ctx.stop is None:
        time.sleep(seconds)
    elif ctx.stop.wait(seconds):
        raise PctError("interrupted by signal")


def run_clone_task(ctx: Ctx, job: CloneJob) -> None:
    """The `vzclone` task (`$realcmd`)."""
    vmid, newid, plan, opts, was_running, target = (
        job.vmid, job.newid, job.plan, job.opts, job.was_running, job.target
    )  # fmt: skip
    ctx.out.append(f"creating a clone of container {vmid} with ID {newid}\n")
    try:
        with _interruptible():
            if running(ctx, vmid) != was_running:
                raise PctError("unexpected state change")
            used = storage.used_volumes(ctx.root)
            for opt in sorted(plan.mountpoints):
                value = plan.mountpoints[opt]
                volid = storage.volume_of(value)
                if plan.full:
                    ctx.out.append(f"create full clone of mountpoint {opt} ({volid})\n")
                    sid = opts.get("storage") or storage.split_volid(volid)[0]
                else:
                    ctx.out.append(f"create linked clone of mount point {opt} ({volid})\n")
                    sid = storage.split_volid(volid)[0]
                _copy(ctx, settings.clone_s(ctx.root))  # the copy (or the thin snapshot)
                new_volid = storage.free_volname(ctx.root, sid, newid, used)
                used.add(new_volid)
                rest = value.split(",", 1)[1:] if "," in value else []
                with locking.config_lock(ctx.root, newid):  # $update_conf
                    conf = _lock_and_reload(ctx, newid)
                    conf.main.keys[opt] = ",".join([new_volid, *rest])
                    write(ctx, newid, conf)
    except (PctError, storage.StorageError, locking.LockTimeout) as exc:
        _unlock_source(ctx, vmid)
        time.sleep(min(1.0, settings.clone_s(ctx.root)))  # "some storages like rbd need to wait"
        _destroy_new(ctx, newid)
        raise PctError(f"clone failed: {exc}") from None
    _unlock_source(ctx, vmid)
    with locking.config_lock(ctx.root, newid):
        _lock_and_reload(ctx, newid)
        remove_lock_locked(ctx, newid, "create")
        if target:
            # move_config_to_node: a rename inside pmxcfs
            os.rename(paths.conf_path(ctx.root, newid), paths.node_conf_path(ctx.root, target, newid))


def cmd_destroy(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> None:
    """`destroy_vm`: checks, then the task under the CT's flock."""
    check_params({"vmid": schema.check_vmid(pos[0])})
    vmid = int(pos[0])
    check_destroy(ctx, vmid, opts)
    run_destroy_task(ctx, vmid, opts)


def _early_checks(vmid: int, conf: conffile.ParsedConf) -> None:
    if conf.main.keys.get("protection") == "1":
        raise PctError(f"can't remove CT {vmid} - protection mode enabled")
    check_lock(conf)


def _running_error(vmid: int) -> str:
    return f"unable to destroy CT {vmid} - container is running"


def check_destroy(ctx: Ctx, vmid: int, opts: dict[str, str]) -> None:
    """`destroy_vm` before `fork_worker`: the CT exists, protection, lock, running."""
    _early_checks(vmid, load(ctx, vmid))
    if opts.get("force") != "1" and running(ctx, vmid):
        raise PctError(_running_error(vmid))


def run_destroy_task(ctx: Ctx, vmid: int, opts: dict[str, str]) -> None:
    """The `vzdestroy` task: the checks again under the CT's flock, then the removal."""
    force = opts.get("force") == "1"
    running_error = _running_error(vmid)
    with locking.config_lock(ctx.root, vmid):
        conf = load(ctx, vmid)
        _early_checks(vmid, conf)
        if running(ctx, vmid):
            if not force:
                raise PctError(running_error)
            warn(ctx, f"forced to stop CT {vmid} before destroying!\n")
            cgroup.remove(ctx.root, vmid)
        # destroy_lxc_container: volumes freed, the config replaced by `lock: destroyed`
        write_atomic(paths.conf_path(ctx.root, vmid), "lock: destroyed\n")
        if opts.get("purge") == "1":
            ctx.out.append(f"purging CT {vmid} from related configurations..\n")
        os.unlink(paths.conf_path(ctx.root, vmid))  # "only now remove the zombie config"
