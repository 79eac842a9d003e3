"""Which Proxmox REST call stands for a validated argument tuple. Pure.

The API executor receives the same argument tuples as the local and SSH executors and
runs the one call each stands for; anything not on this list is refused, so the token
can never be made to do more than the closed command set:

  pct config <vmid> [--current]         GET    /nodes/{n}/lxc/{vmid}/config?current=1
  pct set <vmid> -cores N -memory M     PUT    /nodes/{n}/lxc/{vmid}/config
  pct set <vmid> -tags T | -net0 V      PUT    /nodes/{n}/lxc/{vmid}/config
  pct start|stop <vmid>                 POST   /nodes/{n}/lxc/{vmid}/status/start|stop     task
  pct status <vmid>                     GET    /nodes/{n}/lxc/{vmid}/status/current
  pct snapshot <vmid> <snap>            POST   /nodes/{n}/lxc/{vmid}/snapshot              task
  pct delsnapshot <vmid> <snap>         DELETE /nodes/{n}/lxc/{vmid}/snapshot/{snap}       task
  pct clone <vmid> <new> --snapname S --hostname H [--full 0|1] [--storage ST] [--target T]
                                        POST   /nodes/{n}/lxc/{vmid}/clone                 task
  pct destroy <vmid> --purge            DELETE /nodes/{n}/lxc/{vmid}?purge=1               task
  pvesh get /cluster/nextid --vmid N    GET    /cluster/nextid?vmid=N
  pvesh set /nodes/{T}/lxc/{vmid}/config --tags T | --net0 V         PUT  (same path; only these)
  pvesh create /nodes/{T}/lxc/{vmid}/status/start                    POST (same path)  task
  pvesh get /nodes/{T}/lxc/{vmid}/status/current --output-format json GET (same path)
  pvesh get /nodes/{T}/lxc/{vmid}/config --current 1 --output-format json   GET ?current=1
  pvesh get /nodes/{T}/lxc/{vmid}/snapshot --output-format json             GET (same path)
  pvesh get /cluster/resources --type vm --output-format json              GET ?type=vm

`{n}` is the executor's own node; a pvesh path names its node (Proxmox proxies the call
there, as `pvesh` does). A call marked `task` returns a UPID that the executor waits on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from shared.validation import NODE_NAME_PATTERN

# How the executor turns the reply into pct-like output.
Reply = Literal["config", "none", "task", "status", "value", "json"]

_VMID = r"[1-9][0-9]{2,8}"
_VMID_RE = re.compile(rf"^{_VMID}$")
_NODE = NODE_NAME_PATTERN.pattern.strip("^$")
_SNAPNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{1,39}$")  # pve-snapshot-name
_HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_STORAGE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*[A-Za-z0-9]$")  # pve-storage-id
_NODE_RE = re.compile(rf"^{_NODE}$")
# `pct set` flags the actuator may send, the API parameter each becomes, and its values.
_SET_VALUES = {
    "cores": re.compile(r"^[0-9]{1,4}$"),
    "memory": re.compile(r"^[0-9]{1,9}$"),
    "tags": re.compile(r"^[a-z0-9_][a-z0-9_+.;-]{0,2100}$"),
    "net0": re.compile(r"^[A-Za-z0-9=,.:/_-]{1,300}$"),
}
_PVESH_CONFIG = re.compile(rf"^/nodes/({_NODE})/lxc/({_VMID})/config$")
_PVESH_START = re.compile(rf"^/nodes/({_NODE})/lxc/({_VMID})/status/start$")
_PVESH_STATUS = re.compile(rf"^/nodes/({_NODE})/lxc/({_VMID})/status/current$")
_PVESH_SNAPSHOTS = re.compile(rf"^/nodes/({_NODE})/lxc/({_VMID})/snapshot$")
_JSON = ("--output-format", "json")


class Unsupported(ValueError):
    """Not one of the calls above: the executor refuses it without calling anything."""


@dataclass(frozen=True)
class ApiCall:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    reply: Reply = "none"


def api_call(argv: tuple[str, ...], node: str) -> ApiCall:
    """The call that `argv` stands for on `node`; Unsupported for anything else."""
    if len(argv) >= 3 and argv[2].startswith("/"):
        return _pvesh(argv)
    if len(argv) < 3 or not _VMID_RE.fullmatch(argv[2]):
        raise _refused(argv)
    sub, vmid, rest = argv[1], argv[2], argv[3:]
    base = f"/nodes/{node}/lxc/{vmid}"
    if sub == "config" and rest in ((), ("--current",)):
        # Always the current values: the actuator judges what the container runs with,
        # as the config file reader's main section (pending changes are not applied yet).
        return ApiCall("GET", f"{base}/config", {"current": "1"}, "config")
    if sub == "set" and rest:
        return ApiCall("PUT", f"{base}/config", _set_params(rest, "-", tuple(_SET_VALUES), argv))
    if sub in ("start", "stop") and not rest:
        return ApiCall("POST", f"{base}/status/{sub}", {}, "task")
    if sub == "status" and not rest:
        return ApiCall("GET", f"{base}/status/current", {}, "status")
    if sub == "snapshot" and len(rest) == 1 and _SNAPNAME.fullmatch(rest[0]):
        return ApiCall("POST", f"{base}/snapshot", {"snapname": rest[0]}, "task")
    if sub == "delsnapshot" and len(rest) == 1 and _SNAPNAME.fullmatch(rest[0]):
        return ApiCall("DELETE", f"{base}/snapshot/{rest[0]}", {}, "task")
    if sub == "destroy" and rest == ("--purge",):
        return ApiCall("DELETE", base, {"purge": "1"}, "task")
    if sub == "clone" and rest and _VMID_RE.fullmatch(rest[0]):
        return ApiCall("POST", f"{base}/clone", _clone_params(rest, argv), "task")
    raise _refused(argv)


def _pvesh(argv: tuple[str, ...]) -> ApiCall:
    verb, path, rest = argv[1], argv[2], argv[3:]
    if verb == "get" and path == "/cluster/nextid" and rest[:1] == ("--vmid",) and len(rest) == 2:
        return ApiCall("GET", path, {"vmid": _vmid(rest[1], argv)}, "value")
    if verb == "set" and _PVESH_CONFIG.fullmatch(path) and rest:
        return ApiCall("PUT", path, _set_params(rest, "--", ("tags", "net0"), argv))
    if verb == "create" and _PVESH_START.fullmatch(path) and not rest:
        return ApiCall("POST", path, {}, "task")
    if verb == "get" and rest[-2:] == _JSON:
        return _pvesh_read(path, rest[:-2], argv)
    raise _refused(argv)


def _pvesh_read(path: str, options: tuple[str, ...], argv: tuple[str, ...]) -> ApiCall:
    """The read-only `pvesh get … --output-format json` forms (status, configs of any node)."""
    if (_PVESH_STATUS.fullmatch(path) or _PVESH_SNAPSHOTS.fullmatch(path)) and not options:
        return ApiCall("GET", path, {}, "json")
    if _PVESH_CONFIG.fullmatch(path) and options == ("--current", "1"):
        return ApiCall("GET", path, {"current": "1"}, "json")
    if path == "/cluster/resources" and options == ("--type", "vm"):
        return ApiCall("GET", path, {"type": "vm"}, "json")
    raise _refused(argv)


def _vmid(value: str, argv: tuple[str, ...]) -> str:
    if not _VMID_RE.fullmatch(value):
        raise _refused(argv)
    return value


def _set_params(
    rest: tuple[str, ...], dash: str, names: tuple[str, ...], argv: tuple[str, ...]
) -> dict[str, str]:
    if len(rest) % 2:
        raise _refused(argv)
    params = {}
    for flag, value in zip(rest[::2], rest[1::2], strict=True):
        name = flag[len(dash) :] if flag.startswith(dash) and not flag.startswith(dash + "-") else ""
        allowed = _SET_VALUES.get(name) if name in names else None
        if allowed is None or not allowed.fullmatch(value) or name in params:
            raise _refused(argv)
        params[name] = value
    return params


def _clone_params(rest: tuple[str, ...], argv: tuple[str, ...]) -> dict[str, str]:
    params = {"newid": rest[0]}
    options = rest[1:]
    if len(options) % 2:
        raise _refused(argv)
    checks = {"snapname": _SNAPNAME, "hostname": _HOSTNAME, "full": re.compile(r"^[01]$"),
              "storage": _STORAGE, "target": _NODE_RE}  # fmt: skip
    for flag, value in zip(options[::2], options[1::2], strict=True):
        name = flag[2:] if flag.startswith("--") else ""
        check = checks.get(name)
        if check is None or not check.fullmatch(value) or name in params:
            raise _refused(argv)
        params[name] = value
    return params


def upid_node(upid: str) -> str:
    """The node a task runs on: `UPID:<node>:…` (its status is read there)."""
    parts = upid.split(":")
    if len(parts) < 9 or parts[0] != "UPID" or not _NODE_RE.fullmatch(parts[1]):
        raise Unsupported(f"not a task id: {upid[:80]!r}")
    return parts[1]


def _refused(argv: tuple[str, ...]) -> Unsupported:
    shown = " ".join(argv[1:3]) if len(argv) > 1 else "an empty command"
    return Unsupported(f"the API executor cannot run {shown}")
