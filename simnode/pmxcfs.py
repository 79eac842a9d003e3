"""Cluster-wide reads of pmxcfs (`/etc/pve`), as pve-cluster answers them.

On a real cluster `/etc/pve` is the same on every node: `nodes/<node>/lxc/<vmid>.conf`
for every guest of every node, `datacenter.cfg`, `storage.cfg`. Only the `lxc` and
`local` links point at the local node. A simulated cluster shares `etc/pve/nodes` and
the cluster files between its node roots (simnode/tree.py `build_cluster`), so these
reads see every node from any of them; a single node is a cluster of one.

Stdlib only: `pct` and `pvesh` import this on every spawn.
"""

from __future__ import annotations

import os

from simnode import paths

# `PVE::Cluster` vmlist: guests by type, from the config directories of every node.
_GUEST_DIRS = (("lxc", "lxc"), ("qemu-server", "qemu"))
DEFAULT_NEXT_ID = (100, 1000 * 1000)  # API2::Cluster nextid: lower 100, upper 1e6 (exclusive)


def nodes(root: str) -> list[str]:
    """Cluster members: a node directory under `/etc/pve/nodes` per node."""
    directory = paths.nodes_dir(root)
    names = os.listdir(directory) if os.path.isdir(directory) else []
    return sorted(n for n in names if os.path.isdir(os.path.join(directory, n)))


def node_exists(root: str, name: str) -> bool:
    """`PVE::Cluster::check_node_exists` (the nodelist of the cluster)."""
    return name in nodes(root)


def vmlist(root: str) -> dict[int, tuple[str, str]]:
    """`PVE::Cluster::get_vmlist` ids: vmid -> (node, type) over the whole cluster."""
    out: dict[int, tuple[str, str]] = {}
    for node in nodes(root):
        for sub, kind in _GUEST_DIRS:
            directory = os.path.join(paths.nodes_dir(root), node, sub)
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                continue
            for name in names:
                stem, dot, ext = name.partition(".")
                if dot and ext == "conf" and stem.isdigit():
                    out[int(stem)] = (node, kind)
    return out


def vmid_in_use(root: str, vmid: int) -> str | None:
    """`check_vmid_unused`'s message when `vmid` is taken anywhere in the cluster."""
    found = vmlist(root).get(vmid)
    if found is None:
        return None
    node, kind = found
    return f"{'VM' if kind == 'qemu' else 'CT'} {vmid} already exists on node '{node}'"


def _datacenter(root: str) -> dict[str, str]:
    """`datacenter.cfg` as `key: value` lines (absent file: every default)."""
    try:
        with open(paths.cluster_file(root, "datacenter.cfg"), encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return {}
    out = {}
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            out[key.strip()] = value.strip()
    return out


def mac_prefix(root: str) -> str:
    """`datacenter.cfg` `mac_prefix` (Proxmox's own OUI BC:24:11 by default)."""
    return _datacenter(root).get("mac_prefix", "BC:24:11")


def next_id_range(root: str) -> tuple[int, int]:
    """`datacenter.cfg` `next-id: lower=N,upper=M` (both optional), else 100 .. 1000000."""
    lower, upper = DEFAULT_NEXT_ID
    value = _datacenter(root).get("next-id")
    if value:
        for part in value.split(","):
            name, _, number = part.partition("=")
            if name.strip() == "lower" and number.strip().isdigit():
                lower = int(number)
            elif name.strip() == "upper" and number.strip().isdigit():
                upper = int(number)
    return lower, upper


def node_root(root: str, node: str) -> str | None:
    """The simulated root of another node of the cluster, for what pmxcfs shares besides
    configs (pvestatd's status broadcast). **[simulation only]** A cluster built by
    `simnode.tree.build_cluster` keeps the node roots beside the shared `pmxcfs/` dir
    that every node's `etc/pve/nodes` links to; a single node has only itself."""
    if node == paths.node_name(root):
        return root
    nodes_link = paths.nodes_dir(root)
    if not os.path.islink(nodes_link):
        return None
    cluster_dir = os.path.dirname(os.path.dirname(os.path.realpath(nodes_link)))
    candidate = os.path.join(cluster_dir, node)
    return candidate if os.path.isfile(paths.hostname_path(candidate)) else None
