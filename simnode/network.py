"""A container's `netN` value as pve-container reads and writes it (`parse_lxc_network`,
`print_lxc_network`) and the MAC address Proxmox makes up for it. Stdlib only."""

from __future__ import annotations

import os

from simnode import pmxcfs


def parse(value: str) -> dict[str, str]:
    """`parse_lxc_network`: the `key=value` parts; `type` is always `veth`."""
    out = {}
    for part in value.split(","):
        key, eq, val = part.partition("=")
        if eq and key:
            out[key] = val
    out["type"] = "veth"
    return out


def render(net: dict[str, str]) -> str:
    """`print_property_string`: the required key (`name`) first, then the others sorted."""
    keys = (["name"] if "name" in net else []) + sorted(k for k in net if k != "name")
    return ",".join(f"{k}={net[k]}" for k in keys)


def random_mac(root: str) -> str:
    """`PVE::Tools::random_ether_addr` with the cluster's `mac_prefix`."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 2  # unicast, locally administered (before the prefix)
    addr = ":".join(f"{b:02X}" for b in raw)
    prefix = pmxcfs.mac_prefix(root).upper()
    return prefix + addr[len(prefix) :]


def normalize(root: str, value: str) -> str:
    """What `pct set -netN` stores: parsed, a MAC made up when none is given, printed."""
    net = parse(value)
    if not net.get("hwaddr"):
        net["hwaddr"] = random_mac(root)
    return render(net)


def with_new_mac(root: str, value: str) -> str:
    """`pct clone` "always change MAC! address"."""
    net = parse(value)
    net["hwaddr"] = random_mac(root)
    return render(net)
