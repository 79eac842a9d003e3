"""Build a directory laid out like a Proxmox VE node: configs, cgroups, host files, `pct`."""

from __future__ import annotations

import os
import shlex
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from simnode import cgroup, conffile, paths
from simnode.atomic import read_text, write_atomic

CLUSTER_FILES = ("datacenter.cfg", "storage.cfg")  # shared by every node of a cluster
SNAPTIME_BASE = 1_767_225_600  # 2026-01-01T00:00:00Z; fixed so trees are reproducible
PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ContainerSpec:
    vmid: int
    hostname: str
    cores: int
    memory_mb: int
    swap_mb: int = 512  # what `pct create` writes by default; a config without `swap` means 0
    running: bool = True
    tags: str | None = None
    lock: str | None = None
    cpulimit: float | None = None
    description: str | None = None
    snapshots: tuple[str, ...] = field(default=())
    template: bool = False  # a template's volumes are `base-<vmid>-disk-N`; it never runs

    def __post_init__(self) -> None:
        if not 100 <= self.vmid <= 999_999_999:
            raise ValueError(f"vmid {self.vmid} is outside 100..999999999")
        if not 1 <= self.cores <= 8192:
            raise ValueError(f"CT {self.vmid}: cores {self.cores} is outside 1..8192")
        if self.memory_mb < 16:
            raise ValueError(f"CT {self.vmid}: memory {self.memory_mb} MB is below 16")
        if self.swap_mb < 0:
            raise ValueError(f"CT {self.vmid}: swap must be >= 0")
        if self.template and self.running:
            raise ValueError(f"CT {self.vmid}: a template cannot be running")


class SimNode:
    """A built node tree and helpers to look at it the way tests need to."""

    def __init__(self, root: Path, node_name: str, host_cores: int, host_memory_mb: int) -> None:
        self.root = root
        self.node_name = node_name
        self.host_cores = host_cores
        self.host_memory_mb = host_memory_mb

    @classmethod
    def open(cls, root: Path) -> SimNode:
        """Attach to an existing tree (e.g. one another process built)."""
        root_s = str(root)
        total_kb = 0
        for line in read_text(paths.meminfo_path(root_s)).splitlines():
            if line.startswith("MemTotal:"):
                total_kb = int(line.split()[1])
        return cls(root, paths.node_name(root_s), paths.host_cpu_count(root_s), total_kb // 1024)

    @property
    def pct_path(self) -> Path:
        return Path(paths.pct_wrapper_path(str(self.root)))

    @property
    def pvesh_path(self) -> Path:
        return Path(paths.pvesh_wrapper_path(str(self.root)))

    def oom_kills(self) -> list[str]:
        """The kernel's OOM-kill reports so far, one line each (`var/log/simnode/oom.log`)."""
        log = Path(paths.oom_log_path(str(self.root)))
        return log.read_text(encoding="utf-8").splitlines() if log.exists() else []

    def env(self) -> dict[str, str]:
        """Environment for running `python -m simnode.pct` without `--root`."""
        return {**os.environ, "PVE_SIM_ROOT": str(self.root)}

    def conf_path(self, vmid: int) -> Path:
        return Path(paths.conf_path(str(self.root), vmid))

    def cgroup_dir(self, vmid: int) -> Path:
        return Path(paths.cgroup_dir(str(self.root), vmid))

    def read_conf(self, vmid: int) -> dict[str, str]:
        """The current section's keys as pve-container parses them (description included)."""
        parsed = conffile.parse(read_text(str(self.conf_path(vmid))), vmid)
        keys = dict(parsed.main.keys)
        if parsed.main.description:
            keys["description"] = parsed.main.description
        return keys

    def vmids(self) -> list[int]:
        names = os.listdir(paths.lxc_dir(str(self.root)))
        return sorted(int(n[:-5]) for n in names if n.endswith(".conf") and n[:-5].isdigit())

    def is_running(self, vmid: int) -> bool:
        return self.cgroup_dir(vmid).is_dir()

    def read_cgroup(self, vmid: int, name: str) -> str:
        return (self.cgroup_dir(vmid) / name).read_text(encoding="utf-8")

    def pct_calls(self) -> list[list[str]]:
        """Arguments of every pct invocation so far, from `/var/log/simnode/pct.log`."""
        return _calls(Path(paths.pct_log_path(str(self.root))))

    def pvesh_calls(self) -> list[list[str]]:
        """Arguments of every pvesh run on this node (proxied ones start `--noproxy`)."""
        return _calls(Path(paths.pvesh_log_path(str(self.root))))


def _calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [line.split(" ")[1:] for line in log.read_text(encoding="utf-8").splitlines()]


def mac_for(vmid: int) -> str:
    """A stable MAC in the Proxmox OUI (BC:24:11) derived from the vmid."""
    return f"BC:24:11:{(vmid >> 16) & 255:02X}:{(vmid >> 8) & 255:02X}:{vmid & 255:02X}"


def _spec_keys(spec: ContainerSpec) -> dict[str, str]:
    keys = {
        "arch": "amd64",
        "cores": str(spec.cores),
        "hostname": spec.hostname,
        "memory": str(spec.memory_mb),
        "net0": f"name=eth0,bridge=vmbr0,firewall=1,hwaddr={mac_for(spec.vmid)},ip=dhcp,type=veth",
        "ostype": "debian",
        "rootfs": f"local-lvm:{'base' if spec.template else 'vm'}-{spec.vmid}-disk-0,size=8G",
        "swap": str(spec.swap_mb),
        "unprivileged": "1",
    }
    if spec.tags:
        keys["tags"] = spec.tags
    if spec.lock:
        keys["lock"] = spec.lock
    if spec.cpulimit is not None:
        keys["cpulimit"] = f"{spec.cpulimit:g}"
    if spec.snapshots:
        keys["parent"] = spec.snapshots[-1]
    if spec.template:
        keys["template"] = "1"
    return keys


def render_conf(spec: ContainerSpec) -> str:
    """The file `PVE::LXC::Config::write_pct_config` would write for this spec."""
    out = [f"#{conffile.encode_text(line)}\n" for line in (spec.description or "").split("\n") if line]
    keys = _spec_keys(spec)
    out.extend(f"{k}: {keys[k]}\n" for k in sorted(keys))
    parent: str | None = None
    for i, name in enumerate(spec.snapshots):
        snap = {k: v for k, v in keys.items() if k not in ("lock", "parent")}
        if parent:
            snap["parent"] = parent
        snap["snaptime"] = str(SNAPTIME_BASE + 3600 * i)
        out.append(f"\n[{name}]\n")
        out.extend(f"{k}: {snap[k]}\n" for k in sorted(snap))
        parent = name
    return "".join(out)


def render_meminfo(total_mb: int, used_kb: int = 0, cache_kb: int = 0) -> str:
    """`/proc/meminfo` in the kernel's layout (label padded to 16, value to 8, ` kB`)."""
    total = total_mb * 1024
    buffers = total // 200
    base_cache = total // 20
    cached = base_cache + cache_kb
    free = max(total - used_kb - buffers - base_cache, 0)
    swap = 8 * 1024 * 1024
    rows = [
        ("MemTotal", total),
        ("MemFree", free),
        ("MemAvailable", min(free + cached + buffers, total)),
        ("Buffers", buffers),
        ("Cached", cached),
        ("SwapCached", 0),
        ("Active", (used_kb + cached) // 2),
        ("Inactive", (used_kb + cached) - (used_kb + cached) // 2),
        ("Active(anon)", used_kb // 2),
        ("Inactive(anon)", used_kb - used_kb // 2),
        ("Active(file)", cached // 2),
        ("Inactive(file)", cached - cached // 2),
        ("Unevictable", 0),
        ("Mlocked", 0),
        ("SwapTotal", swap),
        ("SwapFree", swap),
        ("Dirty", 0),
        ("Writeback", 0),
        ("AnonPages", used_kb),
        ("Mapped", 0),
        ("Shmem", 0),
        ("KReclaimable", 0),
        ("Slab", 0),
        ("SReclaimable", 0),
        ("SUnreclaim", 0),
        ("KernelStack", 0),
        ("PageTables", 0),
        ("CommitLimit", total // 2 + swap),
        ("Committed_AS", used_kb),
        ("VmallocTotal", 34359738367),
        ("VmallocUsed", 0),
        ("VmallocChunk", 0),
        ("HugePages_Total", 0),
        ("HugePages_Free", 0),
        ("Hugepagesize", 2048),
    ]
    lines = []
    for label, value in rows:
        unit = "" if label.startswith("HugePages_") else " kB"
        lines.append(f"{label + ':':<16}{value:>8}{unit}\n")
    return "".join(lines)


def write_pct_wrapper(root: Path) -> Path:
    """`<root>/usr/sbin/pct`: runs the simulated pct with the real pct's arguments."""
    return _write_wrapper(Path(paths.pct_wrapper_path(str(root))), "pct", root)


def write_pvesh_wrapper(root: Path) -> Path:
    """`<root>/usr/bin/pvesh`: the simulated `pvesh get /cluster/resources`."""
    return _write_wrapper(Path(paths.pvesh_wrapper_path(str(root))), "pvesh", root)


def _write_wrapper(wrapper: Path, module: str, root: Path) -> Path:
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    script = (
        "#!/bin/sh\n"
        f"# Simulated Proxmox {module} (simnode); see simnode/README.md.\n"
        f"# -S skips site-packages: {module} needs only the stdlib, and starts twice as fast.\n"
        f"PYTHONPATH={shlex.quote(str(PROJECT_DIR))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        "export PYTHONPATH\n"
        f'exec {shlex.quote(sys.executable)} -S -m simnode.{module} --root {shlex.quote(str(root))} "$@"\n'
    )
    wrapper.write_text(script, encoding="utf-8")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return wrapper


def _link(path: Path, target: str | Path) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()
    path.symlink_to(target)


def _make_layout(
    root: Path, node_name: str, host_cores: int, host_memory_mb: int, cluster_dir: Path | None = None
) -> None:
    if cluster_dir is not None:  # pmxcfs is cluster-wide: nodes/ and the cluster files are shared
        (root / "etc" / "pve").mkdir(parents=True, exist_ok=True)
        (cluster_dir / "nodes").mkdir(parents=True, exist_ok=True)
        for name in ("nodes", *CLUSTER_FILES):
            _link(root / "etc" / "pve" / name, cluster_dir / name)
    node_dir = root / "etc" / "pve" / "nodes" / node_name / "lxc"
    node_dir.mkdir(parents=True, exist_ok=True)
    for link, target in (("lxc", f"nodes/{node_name}/lxc"), ("local", f"nodes/{node_name}")):
        _link(root / "etc" / "pve" / link, target)
    (root / "etc" / "hostname").write_text(f"{node_name}\n", encoding="utf-8")
    for sub in (
        "proc",
        "sys/devices/system/cpu",
        paths.CGROUP_BASE,
        "run/lock/lxc",
        "var/lib/simnode",
        "var/log/simnode",
    ):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "proc" / "meminfo").write_text(render_meminfo(host_memory_mb), encoding="utf-8")
    online = "0" if host_cores == 1 else f"0-{host_cores - 1}"
    Path(paths.cpu_online_path(str(root))).write_text(f"{online}\n", encoding="utf-8")


def build_node(
    root: Path,
    *,
    node_name: str,
    host_cores: int,
    host_memory_mb: int,
    containers: list[ContainerSpec],
    cluster_dir: Path | None = None,
) -> SimNode:
    """Create (or refresh) a node tree under `root` holding exactly `containers`.
    With `cluster_dir`, the node joins that cluster's shared /etc/pve (see build_cluster)."""
    if host_cores < 1 or host_memory_mb < 16:
        raise ValueError("a node needs at least 1 core and 16 MB")
    vmids = [c.vmid for c in containers]
    if len(set(vmids)) != len(vmids):
        raise ValueError(f"duplicate vmids in {sorted(vmids)}")
    root = Path(root).resolve()
    _make_layout(root, node_name, host_cores, host_memory_mb, cluster_dir)
    for spec in containers:
        raw = render_conf(spec)
        write_atomic(paths.conf_path(str(root), spec.vmid), raw)
        cgroup.remove(str(root), spec.vmid)
        if spec.running:
            keys = conffile.parse(raw, spec.vmid).main.keys
            cgroup.create(str(root), spec.vmid, keys, host_cores)
    write_pct_wrapper(root)
    write_pvesh_wrapper(root)
    return SimNode(root, node_name, host_cores, host_memory_mb)


# ----------------------------------------------------------------------------- clusters


@dataclass(frozen=True)
class NodeSpec:
    name: str
    host_cores: int
    host_memory_mb: int
    containers: tuple[ContainerSpec, ...] = ()


class SimCluster:
    """Several simulated nodes sharing one /etc/pve: `<root>/pmxcfs` holds `nodes/` and
    the cluster files, `<root>/<node>` is each node's root (a SimNode)."""

    def __init__(self, root: Path, nodes: dict[str, SimNode]) -> None:
        self.root = root
        self.nodes = nodes

    @property
    def pmxcfs_dir(self) -> Path:
        return self.root / "pmxcfs"

    def node(self, name: str) -> SimNode:
        return self.nodes[name]

    def where(self, vmid: int) -> str | None:
        """The node whose directory holds the CT's config (None: no such CT)."""
        for name in sorted(self.nodes):
            if (self.pmxcfs_dir / "nodes" / name / "lxc" / f"{vmid}.conf").exists():
                return name
        return None

    def vmids(self) -> dict[int, str]:
        """Every CT of the cluster -> its node."""
        return {vmid: name for name, node in self.nodes.items() for vmid in node.vmids()}

    def write_cluster_file(self, name: str, text: str) -> None:
        """Write `datacenter.cfg` or `storage.cfg`, seen by every node."""
        if name not in CLUSTER_FILES:
            raise ValueError(f"{name} is not one of {CLUSTER_FILES}")
        write_atomic(str(self.pmxcfs_dir / name), text)

    @classmethod
    def open(cls, root: Path) -> SimCluster:
        root = Path(root).resolve()
        names = sorted(p.name for p in (root / "pmxcfs" / "nodes").iterdir() if p.is_dir())
        return cls(root, {name: SimNode.open(root / name) for name in names})


def build_cluster(
    root: Path,
    nodes: list[NodeSpec],
    *,
    datacenter_cfg: str | None = None,
    storage_cfg: str | None = None,
) -> SimCluster:
    """Build a cluster of simulated nodes under `root` (see SimCluster for the layout).
    Vmids are unique across the cluster, as pmxcfs's vmlist requires."""
    names = [n.name for n in nodes]
    if not nodes or len(set(names)) != len(names):
        raise ValueError(f"a cluster needs distinct node names, got {names}")
    vmids = [c.vmid for n in nodes for c in n.containers]
    if len(set(vmids)) != len(vmids):
        raise ValueError(f"vmids must be unique across the cluster: {sorted(vmids)}")
    root = Path(root).resolve()
    shared = root / "pmxcfs"
    (shared / "nodes").mkdir(parents=True, exist_ok=True)
    for name, text in (("datacenter.cfg", datacenter_cfg), ("storage.cfg", storage_cfg)):
        if text is not None:
            write_atomic(str(shared / name), text)
    built = {
        spec.name: build_node(
            root / spec.name,
            node_name=spec.name,
            host_cores=spec.host_cores,
            host_memory_mb=spec.host_memory_mb,
            containers=list(spec.containers),
            cluster_dir=shared,
        )
        for spec in nodes
    }
    return SimCluster(root, built)
