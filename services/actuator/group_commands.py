"""The closed set of commands a horizontal group's scale-out and scale-in may run. Pure.

Each operation is a frozen value built only through its checking function, and rendered
as an argument tuple by `group_argv`, which checks every value again on the way out (a
hand-built value cannot slip through). Formats follow pve-container's schema:
`pve-snapshot-name`, `dns-name`, `pve-storage-id`, `pve-tag`, the `net0` property string.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from services.actuator.commands import CommandRefused, Start, Stop, argv, check_pct_path, check_vmid
from shared.validation import NODE_NAME_PATTERN

_SNAPNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{1,39}$")  # pve-snapshot-name
_HOSTNAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")  # one DNS label
_STORAGE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*[A-Za-z0-9]$")  # pve-storage-id
_TAG = re.compile(r"^[a-z0-9_][a-z0-9_+.-]{0,63}$")  # pve-tag, lower case here
_BRIDGE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # a Linux interface name
_HWADDR = re.compile(r"^[0-9A-F]{2}(?::[0-9A-F]{2}){5}$")
MAX_TAGS = 32
GROUP_TAG_PREFIX = "autoscale-group-"


@dataclass(frozen=True)
class Net0:
    """The clone's first interface: `name=eth0,bridge=…,hwaddr=…,ip=…[,gw=…],type=veth`.

    `ip` is "dhcp" or an IPv4 interface ("10.0.0.5/24"); `hwaddr` keeps the MAC Proxmox
    gave the clone (a net0 without one would get yet another random MAC)."""

    bridge: str
    ip: str
    gateway: str | None = None
    hwaddr: str | None = None
    name: str = "eth0"

    def render(self) -> str:
        parts = [f"name={self.name}", f"bridge={self.bridge}"]
        if self.hwaddr is not None:
            parts.append(f"hwaddr={self.hwaddr}")
        parts.append(f"ip={self.ip}")
        if self.gateway is not None:
            parts.append(f"gw={self.gateway}")
        parts.append("type=veth")
        return ",".join(parts)


@dataclass(frozen=True)
class Snapshot:
    """`pct snapshot <vmid> <snapname>`: the clone's consistent source."""

    vmid: int
    snapname: str


@dataclass(frozen=True)
class DeleteSnapshot:
    """`pct delsnapshot <vmid> <snapname>`."""

    vmid: int
    snapname: str


@dataclass(frozen=True)
class Clone:
    """`pct clone <src> <new> --snapname S --hostname H [--full 0|1] [--storage ST] [--target N]`.

    `full` None leaves the choice to Proxmox: a full copy of a normal container, a linked
    clone of a template."""

    source_vmid: int
    new_vmid: int
    snapname: str
    hostname: str
    full: bool | None = True
    storage: str | None = None
    target: str | None = None


@dataclass(frozen=True)
class SetNet:
    """`pct set <vmid> -net0 <net0>`."""

    vmid: int
    net0: Net0


@dataclass(frozen=True)
class SetTags:
    """`pct set <vmid> -tags a;b`: the whole list (Proxmox replaces it)."""

    vmid: int
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Status:
    """`pct status <vmid>`: read-only, `status: running|stopped`."""

    vmid: int


@dataclass(frozen=True)
class Destroy:
    """`pct destroy <vmid> --purge`: only ever built with `allow_destroy` set."""

    vmid: int


RemoteOperation = SetTags | SetNet | Start | Status


@dataclass(frozen=True)
class OnNode:
    """A step on a container of another node of the cluster: run as `pvesh` on this node,
    which Proxmox proxies to `node` (pve-manager PVE/CLI/pvesh.pm `check_proxyto`), so the
    actuator needs no way into that node. Only tags, net0, start and status: the clone a
    cross-node scale-out made on `node` is finished there; everything else stays local."""

    node: str
    operation: RemoteOperation


GroupOperation = (
    Snapshot | DeleteSnapshot | Clone | SetNet | SetTags | Status | Start | Stop | Destroy | OnNode
)


# ------------------------------------------------------------------ builders


def check_snapname(value: str) -> str:
    if not isinstance(value, str) or not _SNAPNAME.fullmatch(value):
        raise CommandRefused("invalid-snapname", "snapshot name must be 2-40 letters, digits, '-' or '_'")
    return value


def check_hostname(value: str) -> str:
    if not isinstance(value, str) or not _HOSTNAME.fullmatch(value):
        raise CommandRefused(
            "invalid-hostname", "clone hostname must be a DNS label (1-63 letters, digits, '-')"
        )
    return value


def check_tag(value: str) -> str:
    if not isinstance(value, str) or not _TAG.fullmatch(value):
        raise CommandRefused("invalid-tag", f"tag {value[:70]!r} is not a Proxmox tag")
    return value


def group_tag(group: str) -> str:
    """The tag that marks a container as a member of `group` (durable across restarts)."""
    return check_tag(f"{GROUP_TAG_PREFIX}{group.lower()}")


def snapshot(vmid: object, snapname: str) -> Snapshot:
    return Snapshot(check_vmid(vmid), check_snapname(snapname))


def delete_snapshot(vmid: object, snapname: str) -> DeleteSnapshot:
    return DeleteSnapshot(check_vmid(vmid), check_snapname(snapname))


def clone(
    source_vmid: object,
    new_vmid: object,
    *,
    snapname: str,
    hostname: str,
    full: bool | None = True,
    storage: str | None = None,
    target: str | None = None,
) -> Clone:
    source, new = check_vmid(source_vmid), check_vmid(new_vmid)
    if source == new:
        raise CommandRefused("invalid-vmid", "a clone needs a new vmid, not its source's")
    if full is not None and not isinstance(full, bool):
        raise CommandRefused("invalid-clone-mode", "full must be true, false or unset")
    if storage is not None:
        if not _STORAGE.fullmatch(storage):
            raise CommandRefused("invalid-storage", "target storage must be a Proxmox storage id")
        if full is False:
            # Proxmox: "parameter 'storage' not allowed for linked clones"
            raise CommandRefused("invalid-storage", "a target storage needs a full clone")
    if target is not None and not NODE_NAME_PATTERN.fullmatch(target):
        raise CommandRefused("invalid-node", "clone target must be a node name")
    return Clone(source, new, check_snapname(snapname), check_hostname(hostname), full, storage, target)


def net0(bridge: str, ip: str, gateway: str | None = None, hwaddr: str | None = None) -> Net0:
    if not _BRIDGE.fullmatch(bridge):
        raise CommandRefused(
            "invalid-bridge", "bridge must be an interface name (1-15 letters, digits, '._-')"
        )
    if ip != "dhcp":
        try:
            interface = ipaddress.IPv4Interface(ip)
        except ValueError:
            raise CommandRefused("invalid-ip", f"{ip[:50]!r} is not dhcp or an IPv4 address/prefix") from None
        if "/" not in ip:
            raise CommandRefused("invalid-ip", f"{ip!r} needs a /prefix")
        ip = interface.with_prefixlen
    if gateway is not None:
        try:
            gateway = str(ipaddress.IPv4Address(gateway))
        except ValueError:
            raise CommandRefused("invalid-gateway", f"{gateway[:50]!r} is not an IPv4 address") from None
    if hwaddr is not None and not _HWADDR.fullmatch(hwaddr.upper()):
        raise CommandRefused("invalid-hwaddr", "hwaddr must be a MAC address")
    return Net0(bridge, ip, gateway, hwaddr.upper() if hwaddr is not None else None)


def set_net(vmid: object, value: Net0) -> SetNet:
    checked = net0(value.bridge, value.ip, value.gateway, value.hwaddr)
    if value.name != "eth0":
        raise CommandRefused("invalid-net", "the clone's interface is eth0")
    return SetNet(check_vmid(vmid), checked)


def set_tags(vmid: object, tags: tuple[str, ...]) -> SetTags:
    if not tags or len(tags) > MAX_TAGS:
        raise CommandRefused("invalid-tag", f"1..{MAX_TAGS} tags")
    return SetTags(check_vmid(vmid), tuple(check_tag(tag) for tag in tags))


def status(vmid: object) -> Status:
    return Status(check_vmid(vmid))


def start(vmid: object) -> Start:
    return Start(check_vmid(vmid))


def stop(vmid: object) -> Stop:
    return Stop(check_vmid(vmid))


def on_node(node: str, operation: RemoteOperation) -> OnNode:
    """`operation` on the container of `node`, checked (node name, then the operation's values)."""
    if not isinstance(node, str) or not NODE_NAME_PATTERN.fullmatch(node):
        raise CommandRefused("invalid-node", "the node of a remote step must be a node name")
    match operation:
        case SetTags(vmid, tags):
            return OnNode(node, set_tags(vmid, tags))
        case SetNet(vmid, value):
            return OnNode(node, set_net(vmid, value))
        case Start(vmid):
            return OnNode(node, start(vmid))
        case Status(vmid):
            return OnNode(node, status(vmid))
    raise CommandRefused("unknown-operation", f"{type(operation).__name__} does not run on another node")


def destroy(vmid: object, *, allow_destroy: bool) -> Destroy:
    if allow_destroy is not True:
        raise CommandRefused("destroy-not-allowed", "pct destroy needs allow_destroy: true for the group")
    return Destroy(check_vmid(vmid))


# ------------------------------------------------------------------ rendering


def group_argv(
    operation: GroupOperation, pct_path: str = "/usr/sbin/pct", pvesh_path: str = "/usr/bin/pvesh"
) -> tuple[str, ...]:
    """Argument strings for one operation; every value is checked again here."""
    pct = check_pct_path(pct_path)
    match operation:
        case OnNode(node, remote):
            return _pvesh_args(on_node(node, remote), check_pct_path(pvesh_path))
        case Snapshot(vmid, snapname):
            checked = snapshot(vmid, snapname)
            return (pct, "snapshot", str(checked.vmid), checked.snapname)
        case DeleteSnapshot(vmid, snapname):
            checked_delete = delete_snapshot(vmid, snapname)
            return (pct, "delsnapshot", str(checked_delete.vmid), checked_delete.snapname)
        case Clone():
            return (pct, *_clone_args(operation))
        case SetNet(vmid, value):
            checked_net = set_net(vmid, value)
            return (pct, "set", str(checked_net.vmid), "-net0", checked_net.net0.render())
        case SetTags(vmid, tags):
            checked_tags = set_tags(vmid, tags)
            return (pct, "set", str(checked_tags.vmid), "-tags", ";".join(checked_tags.tags))
        case Status(vmid):
            return (pct, "status", str(check_vmid(vmid)))
        case Destroy(vmid):
            return (pct, "destroy", str(check_vmid(vmid)), "--purge")
        case Start() | Stop():
            return argv(operation, pct)
    raise CommandRefused("unknown-operation", f"unknown operation {type(operation).__name__}")


def _clone_args(operation: Clone) -> tuple[str, ...]:
    c = clone(
        operation.source_vmid, operation.new_vmid, snapname=operation.snapname, hostname=operation.hostname,
        full=operation.full, storage=operation.storage, target=operation.target,
    )  # fmt: skip
    args = ["clone", str(c.source_vmid), str(c.new_vmid), "--snapname", c.snapname, "--hostname", c.hostname]
    if c.full is not None:
        args += ["--full", "1" if c.full else "0"]
    if c.storage is not None:
        args += ["--storage", c.storage]
    if c.target is not None:
        args += ["--target", c.target]
    return tuple(args)


def _pvesh_args(checked: OnNode, pvesh: str) -> tuple[str, ...]:
    """The contract's pvesh argv (docs/actuator.md, "Steps on another node"): the API path
    of the same method `pct` would call (pve-container API2/LXC/Config.pm `update_vm`,
    API2/LXC/Status.pm `vm_start`, `vm_status`), on the node that holds the container."""
    base = f"/nodes/{checked.node}/lxc/{checked.operation.vmid}"
    match checked.operation:
        case SetTags(_, tags):
            return (pvesh, "set", f"{base}/config", "--tags", ";".join(tags))
        case SetNet(_, value):
            return (pvesh, "set", f"{base}/config", "--net0", value.render())
        case Start():
            return (pvesh, "create", f"{base}/status/start")
        case Status():
            return (pvesh, "get", f"{base}/status/current", "--output-format", "json")
    raise CommandRefused("unknown-operation", f"unknown remote operation {type(checked.operation).__name__}")
