"""What a group operation reads from a container's config file. Pure.

The main section gives the lock, the tags and the network; the `[name]` sections after it
are the container's snapshots (`[pve:pending]` is not one). The file is what pmxcfs keeps
at /etc/pve/nodes/<node>/lxc/<vmid>.conf, the same text on every node of a cluster.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_NET_KEY = re.compile(r"^net\d{1,2}$")
_TAG_SPLIT = re.compile(r"[;, ]+")  # Proxmox accepts ';', ',' and spaces between tags


@dataclass(frozen=True)
class CtView:
    lock: str | None = None
    tags: tuple[str, ...] = ()
    nets: dict[str, dict[str, str]] = field(default_factory=dict)  # net0 -> {bridge: …, ip: …}
    snapshots: frozenset[str] = frozenset()
    hostname: str | None = None

    @property
    def addresses(self) -> frozenset[ipaddress.IPv4Address]:
        """The static IPv4 addresses of every interface (dhcp/manual/v6 are not addresses)."""
        found = set()
        for options in self.nets.values():
            address = ip_of(options.get("ip", ""))
            if address is not None:
                found.add(address)
        return frozenset(found)


def ip_of(value: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Interface(value).ip
    except ValueError:
        return None


def parse_ct(text: str) -> CtView:
    main: dict[str, str] = {}
    snapshots: set[str] = set()
    in_main = True
    for line in text.splitlines():
        if line.startswith("["):
            name = line.strip()[1:-1]
            in_main = False
            if name and name != "pve:pending":
                snapshots.add(name)
            continue
        key, sep, value = line.partition(":")
        if in_main and sep and key and not key.startswith("#"):
            main.setdefault(key.strip(), value.strip())
    return view_of(main, snapshots)


def view_of(main: Mapping[str, str], snapshots: Iterable[str]) -> CtView:
    """The view of a main section's keys (from the file, or the API's config object) and
    the names of the snapshots."""
    nets = {key: _options(value) for key, value in main.items() if _NET_KEY.fullmatch(key)}
    tags = tuple(tag for tag in _TAG_SPLIT.split(main.get("tags", "").lower()) if tag)
    return CtView(
        lock=main.get("lock") or None,
        tags=tags,
        nets=nets,
        snapshots=frozenset(snapshots),
        hostname=main.get("hostname") or None,
    )


def _options(value: str) -> dict[str, str]:
    """`name=eth0,bridge=vmbr0,ip=…` as a dict (a property string)."""
    options: dict[str, str] = {}
    for part in value.split(","):
        key, sep, item = part.partition("=")
        if sep:
            options.setdefault(key.strip(), item.strip())
    return options
