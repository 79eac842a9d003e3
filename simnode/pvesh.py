"""A `pvesh` for the simulated node: `pvesh get /cluster/resources`, as pve-manager answers it.

`PVE::API2::Cluster` resources: one entry per guest from `PVE::API2Tools::extract_vm_stats`
over pvestatd's last broadcast (simnode/pvestatd.py): `id`, `vmid`, `node`, `type`,
`status` (`unknown` until pvestatd has seen the guest, and then nothing else), and from
the RRD `uptime`, `name`, `status`, `template`, `maxcpu` (`cores || cpulimit || host
CPUs`, so 1.5 for `cpulimit: 1.5` without `cores`), `cpu` (a fraction of `maxcpu`; 0 on
the first pass after a start), `maxmem`, `mem` (page cache left out), `maxdisk`, `disk`,
`netin`, `netout`, `diskread`, `diskwrite`; `lock` and `tags` from the config file.

Run as `python -m simnode.pvesh --root DIR get /cluster/resources [--type vm]
[--output-format json]` (or with PVE_SIM_ROOT set). Only the stdlib is imported.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from simnode import conffile, paths, pmxcfs, pvestatd, schema
from simnode.atomic import read_text

EXIT_ERROR = 255
_RRD_KEYS = ("uptime", "name", "status", "template", "maxcpu", "cpu", "maxmem", "mem", "maxdisk", "disk")
_ZERO_KEYS = ("netin", "netout", "diskread", "diskwrite")
_TYPES = ("vm", "storage", "node", "sdn", "pool")


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


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    root = os.environ.get("PVE_SIM_ROOT")
    if args and args[0] == "--root" and len(args) > 1:
        root, args = args[1], args[2:]
    if not root:
        sys.stderr.write("simnode pvesh: no --root DIR given and PVE_SIM_ROOT is not set\n")
        return EXIT_ERROR
    code, out = run(root, args)
    sys.stdout.write(out)
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
