"""A `pct` for the simulated node: same arguments, output, errors and exit codes as
Proxmox VE's `/usr/sbin/pct` for the subcommands the autoscaler uses.

Run as `python -m simnode.pct --root DIR <pct args>` (or with PVE_SIM_ROOT set).
Only stdlib and stdlib-only simnode modules are imported: benchmarks spawn this
thousands of times.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from simnode import (
    cgroup,
    clone,
    conffile,
    faults,
    hotplug,
    locking,
    network,
    paths,
    pctbase,
    schema,
    settings,
    snapshot,
    storage,
)
from simnode.atomic import read_text, write_atomic
from simnode.getopt import BOOL, BooleanError, GetoptError, get_options

EXIT_ERROR = 255  # a Perl `die` exits with $! when it is set, else 255
EINTR = 4  # $! left by the flock that lock_file_full's SIGALRM timeout interrupted
# Simulation only: seconds each invocation waits before doing anything, to stand for the
# real pct's start-up (a Perl program compiling its modules). Default 0: a Python start only.
STARTUP_ENV = "SIMNODE_PCT_STARTUP_S"

# Every real pct command, so prefixes resolve as PVE::CLIHandler does (`conf` -> config).
REAL_COMMANDS = (
    "clone",
    "config",
    "console",
    "cpusets",
    "create",
    "delsnapshot",
    "df",
    "destroy",
    "enter",
    "exec",
    "fsck",
    "fstrim",
    "help",
    "list",
    "listsnapshot",
    "migrate",
    "mount",
    "move-volume",
    "pending",
    "pull",
    "push",
    "reboot",
    "remote-migrate",
    "rescan",
    "resize",
    "restore",
    "resume",
    "rollback",
    "set",
    "shutdown",
    "snapshot",
    "start",
    "status",
    "stop",
    "suspend",
    "template",
    "unlock",
    "unmount",
)


PctError = pctbase.PctError
ParamError = pctbase.ParamError
Ctx = pctbase.Ctx
_load_raw = pctbase.load_raw
_load = pctbase.load
_running = pctbase.running
_check_lock = pctbase.check_lock
_vmid_param = pctbase.vmid_param


def _bool_lookup(names: tuple[str, ...], typed: dict[str, str] | None = None) -> Callable[[str], str | None]:
    kinds = dict.fromkeys(names, BOOL)
    kinds.update(typed or {})
    return kinds.get


# ----------------------------------------------------------------------------- commands


def cmd_list(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> None:
    fmt = "{:<10} {:<10} {:<12} {:<20}\n"
    rows = []
    directory = paths.lxc_dir(ctx.root)
    names = os.listdir(directory) if os.path.isdir(directory) else []
    for name in names:
        stem, dot, ext = name.partition(".")
        if not (dot and ext == "conf" and stem.isdigit()):
            continue
        vmid = int(stem)
        conf = _load(ctx, vmid)
        status = "running" if _running(ctx, vmid) else "stopped"
        hostname = "".join((conf.main.keys.get("hostname") or f"CT{vmid}").split())
        rows.append((vmid, status, conf.main.keys.get("lock", ""), hostname))
    if not rows:
        return  # pct prints nothing, not even the header, on an empty node
    ctx.out.append(fmt.format("VMID", "Status", "Lock", "Name"))
    for vmid, status, lock, name in sorted(rows):
        ctx.out.append(fmt.format(vmid, status, lock, name))


def verbose_status(ctx: Ctx, vmid: int, conf: conffile.ParsedConf, running: bool) -> dict[str, str]:
    """`vmstatus` for one CT as `pct status --verbose` prints it (the caller drops `cpu`).
    `mem` is memory.current - memory.stat file (`get_memory_stat`), `maxswap` swap // 0."""
    keys = conf.main.keys
    host_cpus = paths.host_cpu_count(ctx.root)
    stat = {
        "cpus": keys.get("cores") or keys.get("cpulimit") or str(host_cpus),
        "disk": "0",
        "diskread": "0",
        "diskwrite": "0",
        "maxdisk": str(_rootfs_size(keys.get("rootfs", "")) or 4 * 1024**3),
        "maxmem": str(int(keys.get("memory") or 512) * cgroup.MIB),
        "maxswap": str(int(keys.get("swap") or 0) * cgroup.MIB),
        "mem": "0",
        "name": "".join((keys.get("hostname") or f"CT{vmid}").split()),
        "netin": "0",
        "netout": "0",
        "status": "running" if running else "stopped",
        "swap": "0",
        "type": "lxc",
        "uptime": "0",
        "vmid": str(vmid),
    }
    if running:
        stat.update(_running_status(ctx.root, vmid))
    if keys.get("template") == "1":
        stat["template"] = "1"
    for extra in ("lock", "tags"):
        if keys.get(extra):
            stat[extra] = keys[extra]
    return stat


def _running_status(root: str, vmid: int) -> dict[str, str]:
    """The figures vmstatus reads from a running CT's cgroup."""
    directory = paths.cgroup_dir(root, vmid)
    out: dict[str, str] = {"pid": str(pid_of(vmid))}
    try:
        current = int(read_text(os.path.join(directory, "memory.current")))
        file_b = cgroup.parse_kv(read_text(os.path.join(directory, "memory.stat"))).get("file", 0)
        out["mem"] = str(current - file_b)
        out["swap"] = str(int(read_text(os.path.join(directory, "memory.swap.current"))))
    except (OSError, ValueError):
        pass
    for kind in ("cpu", "io", "memory"):
        try:
            text = read_text(os.path.join(directory, f"{kind}.pressure"))
        except OSError:
            continue
        for line in text.splitlines():
            name, _, rest = line.partition(" ")
            avg10 = rest.split(" ")[0].partition("=")[2]
            if kind == "cpu" or name in ("some", "full"):
                out[f"pressure{kind}{name}"] = avg10
    return out


def pid_of(vmid: int) -> int:
    """A stable stand-in for the container's init pid (`find_lxc_pid`)."""
    return 100_000 + vmid % 900_000


def _rootfs_size(rootfs: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    for part in rootfs.split(","):
        if part.startswith("size="):
            size = part[5:]
            if size and size[-1] in units and size[:-1].isdigit():
                return int(size[:-1]) * units[size[-1]]
            if size.isdigit():
                return int(size)
    return 0


def cmd_status(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> None:
    vmid = _vmid_param(pos[0])
    conf = _load(ctx, vmid)  # "test if CT exists"
    running = _running(ctx, vmid)
    if opts.get("verbose") == "1":
        stat = verbose_status(ctx, vmid, conf, running)
        ctx.out.extend(f"{k}: {stat[k]}\n" for k in sorted(stat))  # no `cpu` line, as pct.pm
    else:
        ctx.out.append(f"status: {'running' if running else 'stopped'}\n")


def cmd_config(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> None:
    errors = {}
    vmid_err = schema.check_vmid(pos[0])
    if vmid_err:
        errors["vmid"] = vmid_err
    snap = opts.get("snapshot")
    if snap is not None and schema.check_configid(snap):
        errors["snapshot"] = schema.check_configid(snap) or ""
    if errors:
        raise ParamError("Parameter verification failed.", errors)
    if snap and opts.get("current") == "1":
        msg = "cannot use 'snapshot' parameter with 'current'"
        raise ParamError("Parameter verification failed.", {"snapshot": msg, "current": msg})
    vmid = int(pos[0])
    conf = _load(ctx, vmid)
    # load_current_config: pending values merged in, unless --current
    section = conf.main if opts.get("current") == "1" else conffile.merged(conf)
    if snap:
        if snap not in conf.snapshots:
            raise PctError(f"snapshot '{snap}' does not exist")
        section = conf.snapshots[snap]
    ctx.out.append(conffile.render(section))


def set_params(opts: dict[str, str]) -> dict[str, str]:
    errors = {}
    for key, value in opts.items():
        opt = schema.set_option(key)
        err = schema.check_param(opt, value) if opt else "property is not defined in schema"
        err = err or schema.check_set_format(key, value)
        if err:
            errors[key] = err
    if errors:
        raise ParamError("Parameter verification failed.", errors)
    return opts


def _normalize(root: str, key: str, value: str) -> str:
    if schema.is_net_key(key):
        return network.normalize(root, value)  # parse_lxc_network + print_lxc_network
    if key == "tags":
        return schema.unique_tags(value)  # update_pct_config: get_unique_tags
    opt = schema.conf_option(key)
    if opt is not None and opt[0] == "integer":
        return str(int(value))
    return value


def _plan_deletes(conf: conffile.ParsedConf, delete: list[str], params: dict[str, str]) -> list[str]:
    """The checks `update_vm`/`update_pct_config` make on `-delete`."""
    out = []
    for opt in delete:
        if schema.conf_option(opt) is None:
            raise ParamError("Parameter verification failed.", {"delete": f"unknown option '{opt}'"})
        if opt in params:
            msg = f"you can't use '-{opt}' and -delete {opt}' at the same time"
            raise ParamError("Parameter verification failed.", {"delete": msg})
        if opt not in conf.main.keys and not (opt == "description" and conf.main.description):
            sys.stderr.write(f"cannot delete '{opt}' - not set in current configuration!\n")
            continue
        if opt in ("memory", "rootfs", "ostype"):
            raise PctError(f"unable to delete required option '{opt}'")
        if opt == "unprivileged":
            raise PctError(f"unable to delete read-only option: '{opt}'")
        out.append(opt)
    return out


def _act_out_fault(vmid: int, fault: faults.Fault | None) -> None:
    if fault is None:
        return
    kind, value = fault
    if kind == "locked":
        raise PctError(f"CT is locked ({value})")
    if kind == "fail":
        raise PctError(str(value))
    time.sleep(float(value))  # a hung pct keeps holding the config lock, as a real one would


def cmd_set(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> None:
    vmid_err = schema.check_vmid(pos[0])
    params = dict(opts)
    try:
        set_params(params)
    except ParamError as exc:
        if vmid_err:
            exc.errors["vmid"] = vmid_err
        raise
    vmid = _vmid_param(pos[0])
    digest = params.pop("digest", None)
    if not params:
        raise PctError("no options specified")
    delete = schema.split_list(params.pop("delete", ""))
    revert = schema.split_list(params.pop("revert", ""))
    if "cpuunits" in params:
        params["cpuunits"] = hotplug.clamp_cpuunits(params["cpuunits"])
    with locking.config_lock(ctx.root, vmid):
        raw = _load_raw(ctx, vmid)
        _act_out_fault(vmid, faults.consume(ctx.root, vmid))
        conf = _load(ctx, vmid)
        _check_lock(conf)
        if digest is not None and digest != conf.digest:
            raise PctError("detected modified configuration - file changed by other user? Try again.")
        if ctx.check_change is not None:
            ctx.check_change(params, delete)
        _revert(conf, revert)
        deletes = _plan_deletes(conf, delete, params)
        description = params.pop("description", None)
        if "description" in deletes:
            deletes.remove("description")
            description = ""
        updates = {k: _normalize(ctx.root, k, v) for k, v in params.items()}
        change = hotplug.update(ctx.root, vmid, conf, updates, deletes, _running(ctx, vmid))
        if change.errors and settings.pve_version(ctx.root) >= 8:
            # pve-container >= 5.2.2: "don't write to config if we get any errors"
            raise ParamError("Parameter verification failed.", change.errors)
        new_raw = conffile.edit(raw, change.updates, change.deletes, description)
        new_raw = conffile.set_pending(new_raw, change.pending)
        if new_raw != raw:
            write_atomic(paths.conf_path(ctx.root, vmid), new_raw)
        if change.errors:  # PVE 7: written, failed keys left under [pve:pending], then the error
            raise ParamError("Parameter verification failed.", change.errors)


def _revert(conf: conffile.ParsedConf, revert: list[str]) -> None:
    """`-revert opt`: drop a pending change (and a pending deletion) of that option."""
    if conf.pending is None:
        return
    for opt in revert:
        if schema.conf_option(opt) is None:
            raise ParamError("Parameter verification failed.", {"revert": f"unknown option '{opt}'"})
        conf.pending.keys.pop(opt, None)
        dels = [d for d in schema.split_list(conf.pending.keys.get("delete", "")) if d != opt]
        conf.pending.keys["delete"] = ",".join(dels)
        if not dels:
            del conf.pending.keys["delete"]


def cmd_start(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> None:
    vmid = _vmid_param(pos[0])
    if _running(ctx, vmid):
        raise PctError(f"CT {vmid} already running")
    with locking.config_lock(ctx.root, vmid):
        conf = _load(ctx, vmid)
        if conf.main.keys.get("template") == "1":
            raise PctError("you can't start a CT if it's a template")
        if opts.get("skiplock") != "1" and conf.main.keys.get("lock") != "mounted":
            _check_lock(conf)
        if conf.pending is not None:  # vm_start applies pending changes while starting
            raw = _load_raw(ctx, vmid)
            pending = dict(conf.pending.keys)
            deletes = schema.split_list(pending.pop("delete", ""))
            raw = conffile.set_pending(conffile.edit(raw, pending, deletes), {})
            write_atomic(paths.conf_path(ctx.root, vmid), raw)
            conf = conffile.parse(raw, vmid)
        cgroup.create(ctx.root, vmid, conf.main.keys, paths.host_cpu_count(ctx.root))


def cmd_stop(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> None:
    vmid = _vmid_param(pos[0])
    if not _running(ctx, vmid):
        raise PctError(f"CT {vmid} not running")
    with locking.config_lock(ctx.root, vmid):
        conf = _load(ctx, vmid)
        if opts.get("skiplock") != "1" and conf.main.keys.get("lock") != "mounted":
            _check_lock(conf)
        cgroup.remove(ctx.root, vmid)


def cmd_help(ctx: Ctx, opts: dict[str, str], pos: list[str]) -> None:
    ctx.out.append(_usage_all())


# ----------------------------------------------------------------------------- dispatch

Handler = Callable[[Ctx, dict[str, str], list[str]], None]
Lookup = Callable[[str], str | None]


def _set_lookup(name: str) -> str | None:
    opt = schema.set_option(name)
    return opt[0] if opt else None


CLONE_STRING_OPTIONS = ("bwlimit", "description", "hostname", "pool", "snapname", "storage", "target")

# name -> (handler, positional params, option types, all option names, usage line)
COMMANDS: dict[str, tuple[Handler, tuple[str, ...], Lookup, Callable[[], list[str]], str]] = {
    "list": (cmd_list, (), _bool_lookup(()), list, "pct list "),
    "status": (
        cmd_status,
        ("vmid",),
        _bool_lookup(("verbose",)),
        lambda: ["verbose"],
        "pct status <vmid> [OPTIONS]",
    ),
    "config": (
        cmd_config,
        ("vmid",),
        _bool_lookup(("current",), {"snapshot": "string"}),
        lambda: ["current", "snapshot"],
        "pct config <vmid> [OPTIONS]",
    ),
    "set": (cmd_set, ("vmid",), _set_lookup, schema.all_set_option_names, "pct set <vmid> [OPTIONS]"),
    "start": (
        cmd_start,
        ("vmid",),
        _bool_lookup(("debug", "skiplock")),
        lambda: ["debug", "skiplock"],
        "pct start <vmid> [OPTIONS]",
    ),
    "stop": (
        cmd_stop,
        ("vmid",),
        _bool_lookup(("overrule-shutdown", "skiplock")),
        lambda: ["overrule-shutdown", "skiplock"],
        "pct stop <vmid> [OPTIONS]",
    ),
    "snapshot": (
        snapshot.cmd_snapshot,
        ("vmid", "snapname"),
        _bool_lookup((), {"description": "string"}),
        lambda: ["description"],
        "pct snapshot <vmid> <snapname> [OPTIONS]",
    ),
    "delsnapshot": (
        snapshot.cmd_delsnapshot,
        ("vmid", "snapname"),
        _bool_lookup(("force",)),
        lambda: ["force"],
        "pct delsnapshot <vmid> <snapname> [OPTIONS]",
    ),
    "listsnapshot": (
        snapshot.cmd_listsnapshot,
        ("vmid",),
        _bool_lookup(()),
        list,
        "pct listsnapshot <vmid>",
    ),
    "clone": (
        clone.cmd_clone,
        ("vmid", "newid"),
        _bool_lookup(("full",), dict.fromkeys(CLONE_STRING_OPTIONS, "string")),
        lambda: sorted(("full", *CLONE_STRING_OPTIONS)),
        "pct clone <vmid> <newid> [OPTIONS]",
    ),
    "destroy": (
        clone.cmd_destroy,
        ("vmid",),
        _bool_lookup(("destroy-unreferenced-disks", "force", "purge")),
        lambda: ["destroy-unreferenced-disks", "force", "purge"],
        "pct destroy <vmid> [OPTIONS]",
    ),
    "help": (
        cmd_help,
        ("extra-args",),
        _bool_lookup(("verbose",)),
        lambda: ["verbose"],
        "pct help [<extra-args>] [OPTIONS]",
    ),
}


def _usage_all() -> str:
    lines = ["USAGE: pct <COMMAND> [ARGS] [OPTIONS]\n", "\n"]
    lines.extend(f"       {COMMANDS[name][4].rstrip()}\n" for name in sorted(COMMANDS))
    return "".join(lines)


def _abort(reason: str) -> int:
    """`PVE::CLIHandler` $abort: ERROR line, short usage, exit(-1)."""
    sys.stderr.write(f"ERROR: {reason}\n{_usage_all()}")
    return EXIT_ERROR


def _expand(cmd: str) -> str:
    if cmd in REAL_COMMANDS:
        return cmd
    hits = [c for c in REAL_COMMANDS if c.startswith(cmd)]
    return hits[0] if len(hits) == 1 else cmd


def format_param_error(exc: ParamError, usage: str) -> str:
    """`PVE::Exception::stringify` of a 400 with errors, plus the usage line."""
    msg = f"400 {exc}\n"
    for key in sorted(exc.errors):
        msg += f"{key}: {exc.errors[key]}\n"
    return msg + usage + "\n"


def run(root: str, argv: list[str]) -> tuple[int, str]:
    """Run one pct invocation: errors go to stderr; returns (exit code, stdout text).
    What a task printed before it failed is still printed, as pct's task output is."""
    if not argv:
        return _abort("no command specified"), ""
    cmd = _expand(argv[0])
    if cmd not in COMMANDS:
        if cmd in REAL_COMMANDS:
            sys.stderr.write(f"simnode: 'pct {cmd}' is not simulated\n")
            return EXIT_ERROR, ""
        return _abort(f"unknown command 'pct {cmd}'"), ""
    handler, positional, lookup, names, usage = COMMANDS[cmd]
    ctx = Ctx(root)
    try:
        opts, pos = _parse(argv[1:], positional, lookup, names, usage)
        handler(ctx, opts, pos)
    except ParamError as exc:
        sys.stderr.write(format_param_error(exc, usage))
        return EXIT_ERROR, "".join(ctx.out)
    except PctError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_ERROR, "".join(ctx.out)
    except storage.StorageError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_ERROR, "".join(ctx.out)
    except locking.LockTimeout as exc:
        # `lock_config` dies with $@ while $! still holds the interrupted flock's EINTR
        sys.stderr.write(f"{exc}\n")
        return EINTR, "".join(ctx.out)
    return 0, "".join(ctx.out)


def _parse(
    args: list[str],
    positional: tuple[str, ...],
    lookup: Callable[[str], str | None],
    names: Callable[[], list[str]],
    usage: str,
) -> tuple[dict[str, str], list[str]]:
    try:
        opts, pos = get_options(args, lookup, names)
    except GetoptError as exc:
        sys.stderr.write("".join(exc.warnings))
        raise ParamError("unable to parse option") from None
    except BooleanError:
        raise ParamError("unable to parse boolean option") from None
    if positional and positional[-1] == "extra-args":
        return opts, pos
    if len(pos) < len(positional):
        raise ParamError("not enough arguments")
    if len(pos) > len(positional):
        raise ParamError("too many arguments")
    return opts, pos


def log_call(root: str, argv: list[str], log: str | None = None) -> None:
    """One line per invocation so tests can count calls: `<iso time> <args>` (pct.log,
    or pvesh's own log)."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    line = f"{stamp}.{int(now % 1 * 1e6):06d}+00:00 {' '.join(argv)}\n"
    log = log or paths.pct_log_path(root)
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(log), exist_ok=True)
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8", "surrogateescape"))  # one write: O_APPEND keeps it whole
    finally:
        os.close(fd)


def _split_root(argv: list[str]) -> tuple[str | None, list[str]]:
    if argv and argv[0] == "--root" and len(argv) > 1:
        return argv[1], argv[2:]
    if argv and argv[0].startswith("--root="):
        return argv[0][len("--root=") :], argv[1:]
    return os.environ.get("PVE_SIM_ROOT"), argv


def _startup_cost() -> float | None:
    """The configured start-up wait in seconds (0 when unset); None when it is not a number."""
    raw = os.environ.get(STARTUP_ENV, "").strip()
    if not raw:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        return None
    return seconds if 0.0 <= seconds <= 60.0 else None


def main(argv: list[str] | None = None) -> int:
    startup = _startup_cost()
    if startup is None:
        sys.stderr.write(f"simnode pct: {STARTUP_ENV} must be a number of seconds from 0 to 60\n")
        return EXIT_ERROR
    time.sleep(startup)  # before anything is read or written, as a real pct compiles first
    root, args = _split_root(list(sys.argv[1:] if argv is None else argv))
    if not root:
        sys.stderr.write("simnode pct: no --root DIR given and PVE_SIM_ROOT is not set\n")
        return EXIT_ERROR
    log_call(root, args)
    code, out = run(root, args)
    if out:
        sys.stdout.write(out)
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
