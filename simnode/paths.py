"""Where things live inside a simulated node root, mirroring a real Proxmox VE host.

Plain `os.path` strings (not pathlib) because `pct` imports this on every spawn.
"""

from __future__ import annotations

import os

CGROUP_BASE = "sys/fs/cgroup/lxc"


def cfs_conf_path(node: str, vmid: int) -> str:
    """The path pmxcfs reports in errors, relative to /etc/pve (as pve-container prints it)."""
    return f"nodes/{node}/lxc/{vmid}.conf"


def node_lxc_dir(root: str, node: str) -> str:
    return os.path.join(root, "etc", "pve", "nodes", node, "lxc")


def lxc_dir(root: str) -> str:
    """`/etc/pve/lxc`, a symlink to `nodes/<local node>/lxc` as on a real host."""
    return os.path.join(root, "etc", "pve", "lxc")


def conf_path(root: str, vmid: int) -> str:
    return os.path.join(root, "etc", "pve", "lxc", f"{vmid}.conf")


def cgroup_dir(root: str, vmid: int) -> str:
    return os.path.join(root, CGROUP_BASE, str(vmid))


def config_lock_rel(vmid: int) -> str:
    """pve-container's per-CT flock file (`PVE::LXC::Config->config_file_lock`)."""
    return f"/run/lock/lxc/pve-config-{vmid}.lock"


def config_lock_path(root: str, vmid: int) -> str:
    return os.path.join(root, config_lock_rel(vmid).lstrip("/"))


def faults_path(root: str) -> str:
    return os.path.join(root, "var", "lib", "simnode", "faults.json")


def pct_log_path(root: str) -> str:
    return os.path.join(root, "var", "log", "simnode", "pct.log")


def pvesh_log_path(root: str) -> str:
    return os.path.join(root, "var", "log", "simnode", "pvesh.log")


def oom_log_path(root: str) -> str:
    return os.path.join(root, "var", "log", "simnode", "oom.log")


def pvestatd_state_path(root: str) -> str:
    """What the simulated pvestatd last broadcast (the RRD/status cache pvesh reads)."""
    return os.path.join(root, "var", "lib", "simnode", "pvestatd.json")


def start_time_path(root: str, vmid: int) -> str:
    """When a running container started (wall seconds), for its uptime (simulation only)."""
    return os.path.join(root, "var", "lib", "simnode", "started", str(vmid))


def pvesh_wrapper_path(root: str) -> str:
    return os.path.join(root, "usr", "bin", "pvesh")


def pct_wrapper_path(root: str) -> str:
    return os.path.join(root, "usr", "sbin", "pct")


def hostname_path(root: str) -> str:
    return os.path.join(root, "etc", "hostname")


def meminfo_path(root: str) -> str:
    return os.path.join(root, "proc", "meminfo")


def cpu_online_path(root: str) -> str:
    return os.path.join(root, "sys", "devices", "system", "cpu", "online")


def node_name(root: str) -> str:
    """`PVE::INotify::nodename()` reads the short hostname; so do we."""
    with open(hostname_path(root), encoding="utf-8") as fh:
        return fh.read().strip().split(".")[0]


def host_cpu_count(root: str) -> int:
    """Count CPUs in a `/sys/devices/system/cpu/online` list such as `0-15` or `0,2-3`."""
    try:
        with open(cpu_online_path(root), encoding="utf-8") as fh:
            text = fh.read().strip()
    except OSError:
        return os.cpu_count() or 1
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += (int(hi) - int(lo) + 1) if hi else 1
    return count


def pve_dir(root: str) -> str:
    """`/etc/pve`: pmxcfs. In a cluster its `nodes/` and shared files are the cluster's."""
    return os.path.join(root, "etc", "pve")


def nodes_dir(root: str) -> str:
    """`/etc/pve/nodes`: one directory per cluster node (shared by every node)."""
    return os.path.join(root, "etc", "pve", "nodes")


def cluster_file(root: str, name: str) -> str:
    """A cluster-wide file of pmxcfs (`datacenter.cfg`, `storage.cfg`)."""
    return os.path.join(root, "etc", "pve", name)


def node_conf_path(root: str, node: str, vmid: int) -> str:
    """A CT config in another node's directory (clone --target moves it there)."""
    return os.path.join(node_lxc_dir(root, node), f"{vmid}.conf")
