"""A `pvesh` for the simulated node, as pve-manager's PVE/CLI/pvesh.pm answers it.

`pvesh get /cluster/resources`, `/cluster/nextid`, and the container methods under
`/nodes/<node>/lxc/<vmid>/` (`set …/config`, `create …/status/start`, `get
…/status/current`: simnode/pvesh_lxc.py), which run here for this node and are proxied to
the node named in the path otherwise (simnode/pvesh_proxy.py), as pvesh does.

`PVE::API2::Cluster` resources: one entry per guest from `PVE::API2Tools::extract_vm_stats`
over pvestatd's last broadcast (simnode/pvestatd.py): `id`, `vmid`, `node`, `type`,
`status` (`unknown` until pvestatd has seen the guest, and then nothing else), and from
the RRD `uptime`, `name`, `status`, `template`, `maxcpu` (`cores || cpulimit || host
CPUs`, so 1.5 for `cpulimit: 1.5` without `cores`), `cpu` (a fraction of `maxcpu`; 0 on
the first pass after a start), `maxmem`, `mem` (page cache left out), `maxdisk`, `disk`,
`netin`, `netout`, `diskread`, `diskwrite`; `lock` and `tags` from the config file.

Run as `python -m simnode.pvesh --root DIR [--noproxy] get /cluster/resources [--type vm]
[--output-format json]` (or with PVE_SIM_ROOT set). Only the stdlib is imported. Every call
is logged to `var/log/simnode/pvesh.log` (simulation only), as pct's are.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from simnode import conffile, locking, paths, pct, pctbase, pmxcfs, pvesh_lxc, pvesh_proxy, pvestatd, schema
from simnode.atomic import read_text
from simnode.getopt import BOOL, BooleanError, GetoptError, get_options

EXIT_ERROR = 255
_RRD_KEYS = ("uptime", "name", "status", "template", "maxcpu", "cpu", "maxmem", "mem", "maxdisk", "disk")
_ZERO_KEYS = ("netin", "netout", "diskread", "diskwrite")
_TYPES = ("vm", "storage", "node", "sdn", "pool")
_COMMANDS = ("get", "set", "create", "delete")  # `$method_map`
_FORMATS = ("text", "json", "json-pretty", "yaml")
# RESTHandler `$standard_output_options` and pvesh's own `noproxy`, on every method
_STANDARD = {"output-format": "string", "quiet": BOOL, "noborder": BOOL, "noheader": BOOL,
             "human-readable": BOOL, "noproxy": BOOL}  # fmt: skip


def resources(root: str, kind: str | None) -> list[dict[str, Any]]:
    """Every guest and node of the cluster (pmxcfs shares configs and status)."""
    out: list[dict[str, Any]] = []
    members = pmxcfs.nodes(root) or [paths.node_name(root)]
    roots = {node: pmxcfs.node_root(root, node) for node in members}
    if kind in (None, "vm"):
        ids = pmxcfs.vmlist(root)
        for vmid in sorted(ids, key=str):  # `sort keys %$idlist`
            node, guest_type = ids[vmid]
            if guest_type != "lxc":
                continue
            node_root = roots.get(node)
            state = pvestatd.load_state(node_root) if node_root else {}
            rrd = state.get("vms", {}).get(str(vmid))
            out.append(_vm_entry(root, node, vmid, rrd))
    if kind in (None, "node"):
        for node, node_root in roots.items():
            entry: dict[str, Any] = {"id": f"node/{node}", "node": node, "type": "node"}
            if node_root is None:
                entry["status"] = "unknown"
            else:
                entry.update(status="online", maxcpu=paths.host_cpu_count(node_root))
            out.append(entry)
    return out


def _vm_entry(root: str, node: str, vmid: int, rrd: dict[str, Any] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": f"lxc/{vmid}",
        "vmid": vmid,
        "node": node,
        "type": "lxc",
        "status": "unknown",
    }
    if rrd is not None:
        for key in _RRD_KEYS:
            value = rrd.get(key)
            entry[key] = value if key in ("name", "status") else (value or 0)
        for key in _ZERO_KEYS:
            entry[key] = 0
    try:
        keys = conffile.parse(read_text(paths.node_conf_path(root, node, vmid)), vmid).main.keys
    except OSError:
        return entry
    for prop in ("lock", "tags"):  # get_guest_config_properties
        if keys.get(prop):
            entry[prop] = keys[prop]
    return entry


def nextid(root: str, vmid: str | None) -> tuple[int, str]:
    """`PVE::API2::Cluster` `nextid`: the vmid given when it is free (else a 400), or the
    first id of datacenter.cfg's `next-id` range (100 .. 1000000) that no guest of any
    node uses. The id is returned as a string: Perl used it as a hash key first, so
    JSON::XS encodes it quoted (`"105"`)."""
    ids = pmxcfs.vmlist(root)
    if vmid is not None:
        err = schema.check_vmid(vmid)
        if err:
            return 400, f"vmid: {err}"
        if int(vmid) in ids:
            return 400, f"vmid: VM {vmid} already exists"
        return 0, vmid
    lower, upper = pmxcfs.next_id_range(root)
    for candidate in range(lower, upper):
        if candidate not in ids:
            return 0, str(candidate)
    return EXIT_ERROR, f"unable to get any free VMID in range [{lower}, {upper}]"


class _OptionError(Exception):
    """Getopt's complaint, printed before `400 unable to parse option`."""


def _options(options: list[str], known: tuple[str, ...]) -> dict[str, str]:
    """`--name value` / `--name=value` pairs of the API method's parameters."""
    out: dict[str, str] = {}
    i = 0
    while i < len(options):
        name, eq, value = options[i].lstrip("-").partition("=")
        if not eq:
            if i + 1 >= len(options):
                raise _OptionError(f"Option {name} requires an argument")
            value = options[i + 1]
            i += 1
        i += 1
        if name not in known:
            raise _OptionError(f"Unknown option: {name}")
        out[name] = value
    return out


def _get_nextid(root: str, opts: dict[str, str]) -> tuple[int, str]:
    code, result = nextid(root, opts.get("vmid"))
    if code == 400:
        sys.stderr.write(f"400 Parameter verification failed.\n{result}\n")
        return EXIT_ERROR, ""
    if code:
        sys.stderr.write(f"{result}\n")
        return EXIT_ERROR, ""
    if opts.get("output-format") in ("json", "json-pretty"):
        return 0, json.dumps(result) + "\n"
    return 0, result + "\n"  # text: a scalar is printed as it is


def _get_resources(root: str, opts: dict[str, str]) -> tuple[int, str]:
    kind = opts.get("type")
    if kind is not None and kind not in _TYPES:
        sys.stderr.write(
            "400 Parameter verification failed.\n"
            f"type: value '{kind}' does not have a value in the enumeration '{', '.join(_TYPES)}'\n"
        )
        return EXIT_ERROR, ""
    data = resources(root, kind)
    fmt = opts.get("output-format", "text")
    if fmt == "json-pretty":
        return 0, json.dumps(data, indent=4, sort_keys=True) + "\n"
    if fmt != "json":
        sys.stderr.write("simnode: only --output-format json and json-pretty are simulated\n")
        return EXIT_ERROR, ""
    return 0, json.dumps(data, separators=(",", ":")) + "\n"


# path -> (handler, the method's parameters besides the format options)
_PATHS = {
    "/cluster/nextid": (_get_nextid, ("vmid",)),
    "/cluster/resources": (_get_resources, ("type",)),
}


def _usage() -> str:
    return "USAGE: pvesh get <api_path> [OPTIONS] [FORMAT_OPTIONS]\n"


def run(root: str, argv: list[str]) -> tuple[int, str]:
    noproxy = nooutput = False
    while argv and argv[0] in ("--noproxy", "--nooutput"):  # the compatibility loop on top of pvesh.pm
        noproxy, nooutput = noproxy or argv[0] == "--noproxy", nooutput or argv[0] == "--nooutput"
        argv = argv[1:]
    if len(argv) >= 2 and argv[0] in _COMMANDS:
        found = pvesh_lxc.PATH.fullmatch(argv[1])
        if found is not None:
            return _run_lxc(root, argv[0], found, argv[2:], noproxy=noproxy, nooutput=nooutput)
        if argv[0] != "get" and argv[1].rstrip("/") in _PATHS:  # extract_path_info
            sys.stderr.write(f"No '{argv[0]}' handler defined for '{argv[1]}'\n")
            return 1, ""
    if len(argv) < 2 or argv[0] != "get":
        sys.stderr.write(f"simnode: 'pvesh {' '.join(argv[:1])}' is not simulated\n{_usage()}")
        return EXIT_ERROR, ""
    path, options = argv[1], argv[2:]
    if path.rstrip("/") not in _PATHS:
        sys.stderr.write(f"simnode: 'pvesh get {path}' is not simulated\n")
        return EXIT_ERROR, ""
    handler, params = _PATHS[path.rstrip("/")]
    try:
        opts = _options(options, (*params, "output-format"))
    except _OptionError as exc:
        sys.stderr.write(f"{exc}\n400 unable to parse option\n")
        return EXIT_ERROR, ""
    return handler(root, opts)


def _run_lxc(
    root: str, cmd: str, found: re.Match[str], options: list[str], *, noproxy: bool, nooutput: bool
) -> tuple[int, str]:
    """One container method: parse and check here, then run it here or on its node."""
    path, node, rest = found.group(0), found["node"], found["rest"]
    if cmd not in pvesh_lxc.METHODS[rest]:
        sys.stderr.write(f"No '{cmd}' handler defined for '{path}'\n")  # extract_path_info: exit(1)
        return 1, ""
    if (cmd, rest) not in pvesh_lxc.SIMULATED:
        sys.stderr.write(f"simnode: 'pvesh {cmd} {path}' is not simulated\n")
        return EXIT_ERROR, ""
    usage = f"pvesh {cmd} <api_path> [OPTIONS] [FORMAT_OPTIONS]"
    lookup, names = pvesh_lxc.option_lookup(rest)
    try:
        opts = _method_options(options, lookup, names)
        fmt, quiet = opts.pop("output-format", "text"), opts.pop("quiet", "0") == "1" or nooutput
        # a `--noproxy` among the options is accepted but only the leading one counts
        # (`$disable_proxy` is set by the compatibility loop alone)
        for name in ("noproxy", "noborder", "noheader", "human-readable"):
            opts.pop(name, None)
        if rest == "config":
            pct.set_params(opts)  # the method's schema is checked here, before any proxying
        there = pvesh_proxy.target(root, node, noproxy)
        if there is not None:
            data = pvesh_proxy.proxy(root, there, cmd, path, list(opts.items()))
        else:
            pctbase.check_params({"node": schema.check_node_name(node)})
            data = pvesh_lxc.call(pctbase.Ctx(root), rest, found["vmid"], opts)
        out = "" if quiet else _printed(pvesh_lxc.RETURNS[rest], data, fmt)
    except pctbase.ParamError as exc:
        sys.stderr.write(pct.format_param_error(exc, usage))
        return EXIT_ERROR, ""
    except pctbase.PctError as exc:
        sys.stderr.write(f"{exc}\n")
        return EXIT_ERROR, ""
    except locking.LockTimeout as exc:
        sys.stderr.write(f"{exc}\n")
        return pct.EINTR, ""
    return 0, out


def _method_options(
    options: list[str], lookup: Callable[[str], str | None], names: Callable[[], list[str]]
) -> dict[str, str]:
    """`get_options` over the method's parameters and the standard output options; the
    only positional argument, the API path, is taken already."""
    try:
        opts, pos = get_options(
            options, lambda name: _STANDARD.get(name) or lookup(name), lambda: sorted([*_STANDARD, *names()])
        )
    except GetoptError as exc:
        sys.stderr.write("".join(exc.warnings))
        raise pctbase.ParamError("unable to parse option") from None
    except BooleanError:
        raise pctbase.ParamError("unable to parse boolean option") from None
    if pos:
        raise pctbase.ParamError("too many arguments")
    fmt = opts.get("output-format", "text")
    if fmt not in _FORMATS:
        message = f"value '{fmt}' does not have a value in the enumeration '{', '.join(_FORMATS)}'"
        raise pctbase.ParamError("Parameter verification failed.", {"output-format": message})
    return opts


def _printed(returns: str, data: Any, fmt: str) -> str:
    """pve-common CLIFormatter.pm `print_api_result`: nothing for a null method; JSON
    canonical (sorted keys), `json-pretty` with JSON::XS's 3-space indent; a scalar as text."""
    if returns == "null":
        return ""
    if fmt == "json":
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    if fmt == "json-pretty":
        return json.dumps(data, sort_keys=True, indent=3, separators=(",", " : "), ensure_ascii=False) + "\n"
    if fmt == "text" and returns == "string":
        return f"{data}\n"
    raise pctbase.PctError(f"simnode: --output-format {fmt} of an object is not simulated")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    root = os.environ.get("PVE_SIM_ROOT")
    if args and args[0] == "--root" and len(args) > 1:
        root, args = args[1], args[2:]
    if not root:
        sys.stderr.write("simnode pvesh: no --root DIR given and PVE_SIM_ROOT is not set\n")
        return EXIT_ERROR
    pct.log_call(root, args, paths.pvesh_log_path(root))
    code, out = run(root, args)
    sys.stdout.write(out)
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
