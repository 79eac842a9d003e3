"""A Proxmox node as files, cgroup v2 layout, for collector tests (no dependency on simnode).

Writes what a real node has: `etc/pve/lxc/<vmid>.conf`, `sys/fs/cgroup/lxc/<vmid>/...`
for running containers, `proc/meminfo`, `sys/devices/system/cpu/online`, `etc/hostname`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MIB = 1024 * 1024

MEMORY_STAT = (
    "anon {anon}\nfile {file}\nkernel 1048576\nkernel_stack 65536\npagetables 131072\n"
    "sec_pagetables 0\npercpu 0\nsock 0\nvmalloc 0\nshmem 0\nfile_mapped 0\nfile_dirty 0\n"
)
PRESSURE = (
    "some avg10={some:.2f} avg60=0.00 avg300=0.00 total=12345\n"
    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
)


class V2Tree:
    def __init__(self, root: Path, *, cpus: str = "0-15", memory_kb: int = 32 * 1024 * 1024) -> None:
        self.root = root
        (root / "etc/pve/lxc").mkdir(parents=True, exist_ok=True)
        (root / "sys/fs/cgroup/lxc").mkdir(parents=True, exist_ok=True)
        (root / "sys/devices/system/cpu").mkdir(parents=True, exist_ok=True)
        (root / "proc").mkdir(parents=True, exist_ok=True)
        (root / "etc/hostname").write_text("pve1\n")
        (root / "sys/devices/system/cpu/online").write_text(cpus + "\n")
        (root / "proc/meminfo").write_text(
            f"MemTotal:       {memory_kb} kB\nMemFree:        1024000 kB\nMemAvailable:   2048000 kB\n"
        )

    def conf_path(self, vmid: int) -> Path:
        return self.root / f"etc/pve/lxc/{vmid}.conf"

    def cgroup(self, vmid: int) -> Path:
        return self.root / f"sys/fs/cgroup/lxc/{vmid}"

    def container(
        self,
        vmid: int,
        *,
        cores: int | None = 2,
        memory: int = 1024,
        running: bool = True,
        usage_usec: int = 0,
        used_mb: float = 256,
        cache_mb: float = 0,
        extra_conf: str = "",
    ) -> V2Tree:
        lines = [f"hostname: ct{vmid}", f"memory: {memory}", "swap: 512", "ostype: debian"]
        if cores is not None:
            lines.insert(0, f"cores: {cores}")
        self.conf_path(vmid).write_text("\n".join(lines) + "\n" + extra_conf)
        if running:
            self.start(vmid, usage_usec=usage_usec, memory=memory)
            self.set_memory(vmid, used_mb=used_mb, cache_mb=cache_mb)
        return self

    def start(self, vmid: int, *, usage_usec: int = 0, memory: int = 1024) -> None:
        cgroup = self.cgroup(vmid)
        cgroup.mkdir(parents=True)
        self.set_usage(vmid, usage_usec)
        (cgroup / "memory.max").write_text(f"{memory * MIB}\n")
        (cgroup / "cpu.pressure").write_text(PRESSURE.format(some=1.5))
        (cgroup / "memory.pressure").write_text(PRESSURE.format(some=0.25))
        (cgroup / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")
        self.set_memory(vmid, used_mb=0)

    def stop(self, vmid: int) -> None:
        shutil.rmtree(self.cgroup(vmid))

    def destroy(self, vmid: int) -> None:
        if self.cgroup(vmid).exists():
            self.stop(vmid)
        self.conf_path(vmid).unlink()

    def set_usage(self, vmid: int, usage_usec: int) -> None:
        (self.cgroup(vmid) / "cpu.stat").write_text(
            f"usage_usec {usage_usec}\nuser_usec {usage_usec // 2}\nsystem_usec {usage_usec // 2}\n"
            "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n"
        )

    def add_usage(self, vmid: int, usec: int) -> None:
        text = (self.cgroup(vmid) / "cpu.stat").read_text()
        current = int(text.split()[1])
        self.set_usage(vmid, current + usec)

    def set_memory(self, vmid: int, *, used_mb: float, cache_mb: float = 0) -> None:
        """memory.current = used + cache, as the kernel counts page cache as charged memory."""
        cache = int(cache_mb * MIB)
        current = int(used_mb * MIB) + cache
        (self.cgroup(vmid) / "memory.current").write_text(f"{current}\n")
        (self.cgroup(vmid) / "memory.stat").write_text(MEMORY_STAT.format(anon=current - cache, file=cache))

    def write(self, vmid: int, name: str, content: str) -> None:
        (self.cgroup(vmid) / name).write_text(content)

    def remove(self, vmid: int, name: str) -> None:
        (self.cgroup(vmid) / name).unlink()
