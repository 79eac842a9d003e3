"""Drive the cgroup counters of a simulated node from per-container load profiles.

Each tick reads the container's CURRENT cgroup limits, the ones the kernel enforces, so
a resize changes what is measured next as on a real node, and only once it is enacted:
- CPU: `usage_usec += min(demand, CPUs in cpuset.cpus.effective, cpu.max quota) * dt * 1e6`
  (80 % user, 20 % system); a `pct set -cores` changes the cpuset only when pvestatd
  rebalances (simnode/pvestatd.py, run by the driver every `pvestatd_period_s`);
- memory: anon demand plus page cache, brought within memory.max as the kernel does
  (`cgroup.enforce_memory_max`: cache reclaimed, anon swapped within memory.swap.max,
  then the service OOM-killed); a killed service restarts after RESTART_S and grows
  back to its demand (`WorkloadDriver.kills` counts the kills it saw);
- PSI and memory.events show the shortfall when demand exceeds the limits.
- boot: a container (re)started while the driver runs serves no load for the node's
  `settings.boot_s` (it holds BASE_ANON_MB of memory and no CPU), then its load starts;
- groups (`GroupLoad`): a named total load spread evenly over the group's members that
  are running and booted (every CT whose `tags` hold the group's tag, on every node the
  driver drives), so a group that gains a member gives each member a smaller share; a
  container with its own profile is not a group member;
- noise (optional): each tick, each container's CPU demand is multiplied by a factor
  drawn uniformly from [1 - noise, 1 + noise] (seeded, so a run can be repeated); the
  mean load stays the profile's, the short-term swings are what a real service shows.

CLI: `python -m simnode.workload --root DIR --profile FILE.json [--tick S] [--duration S]
[--noise F] [--seed N]`.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from simnode import cgroup, paths, pvestatd, schema, settings
from simnode.atomic import read_text, write_atomic
from simnode.tree import SimNode, render_meminfo

MIB = cgroup.MIB
USER_SHARE = 0.8  # a typical service spends most CPU time in user space
RESTART_S = 5.0  # an OOM-killed service is restarted (by systemd in the CT) after this long
PSI_WINDOWS = (10.0, 60.0, 300.0)


@dataclass(frozen=True)
class Phase:
    duration_s: float
    cpu_cores_demand: float
    memory_mb_demand: int
    cache_mb: int = 0


@dataclass(frozen=True)
class LoadProfile:
    """Phases played in order; after the last one, loop or hold the last phase."""

    phases: tuple[Phase, ...]
    loop: bool = False

    def __post_init__(self) -> None:
        if not self.phases:
            raise ValueError("a load profile needs at least one phase")
        if any(p.duration_s <= 0 for p in self.phases):
            raise ValueError("phase durations must be > 0")

    @property
    def period_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    def phase_at(self, t: float) -> tuple[Phase, float]:
        """The phase at profile time `t` and the seconds left in it (inf when held)."""
        if self.loop:
            t = t % self.period_s
        for phase in self.phases:
            if t < phase.duration_s:
                return phase, phase.duration_s - t
            t -= phase.duration_s
        return self.phases[-1], math.inf

    def cpu_seconds(self, start: float, dt: float, cap: float, factor: float = 1.0) -> float:
        """CPU-seconds used over [start, start+dt] with demand (times `factor`) capped at `cap` cores."""
        used, t, left = 0.0, start, dt
        while left > 1e-12:
            phase, remaining = self.phase_at(t)
            step = min(left, remaining)
            used += min(phase.cpu_cores_demand * factor, cap) * step
            t, left = t + step, left - step
        return used


@dataclass(frozen=True)
class GroupLoad:
    """A load spread over a group: each phase's `cpu_cores_demand` is the group's total,
    `memory_mb_demand` and `cache_mb` are each member's. Members: running, booted CTs
    whose config `tags` hold `tag` (a load balancer's backends)."""

    name: str
    tag: str
    profile: LoadProfile


class _Limits:
    __slots__ = ("cores", "memory_mb", "swap_mb")

    def __init__(self, cores: float, memory_mb: int, swap_mb: int) -> None:
        self.cores = cores
        self.memory_mb = memory_mb
        self.swap_mb = swap_mb


def _read_limits(root: str, vmid: int, host_cpus: int) -> _Limits | None:
    """The limits the kernel enforces now: CPUs of the effective cpuset, capped by the
    cpu.max quota; memory.max and memory.swap.max (None when the CT is gone)."""
    directory = paths.cgroup_dir(root, vmid)
    try:
        cpuset = read_text(os.path.join(directory, "cpuset.cpus.effective"))
        quota, period = [*read_text(os.path.join(directory, "cpu.max")).split(), "100000"][:2]
        memory = read_text(os.path.join(directory, "memory.max")).strip()
        swap = read_text(os.path.join(directory, "memory.swap.max")).strip()
    except OSError:
        return None
    cores = float(min(len(cgroup.parse_cpu_list(cpuset)) or host_cpus, host_cpus))
    if quota != "max":
        cores = min(cores, int(quota) / int(period))
    unlimited = 1 << 40
    memory_mb = unlimited if memory == "max" else int(memory) // MIB
    swap_mb = unlimited if swap == "max" else int(swap) // MIB
    return _Limits(cores, memory_mb, swap_mb)


def _read_psi(path: str) -> dict[str, list[float]]:
    """{'some': [avg10, avg60, avg300, total], 'full': [...]} from a PSI file."""
    out = {"some": [0.0, 0.0, 0.0, 0.0], "full": [0.0, 0.0, 0.0, 0.0]}
    try:
        text = read_text(path)
    except OSError:
        return out
    for line in text.splitlines():
        name, *fields = line.split()
        if name in out:
            out[name] = [float(f.split("=")[1]) for f in fields]
    return out


def _next_psi(prev: list[float], stall_pct: float, dt: float) -> tuple[float, float, float, int]:
    """Move the running averages towards `stall_pct` as the kernel's do, add stall time."""
    avgs = []
    for window, old in zip(PSI_WINDOWS, prev[:3], strict=True):
        decay = math.exp(-dt / window)
        avgs.append(old * decay + stall_pct * (1 - decay))
    total = int(prev[3] + stall_pct / 100 * dt * 1e6)
    return avgs[0], avgs[1], avgs[2], total


def _start_stamp(root: str, vmid: int) -> str:
    """When the CT was last started (written by `pct start`); "" when unknown."""
    try:
        return read_text(paths.start_time_path(root, vmid)).strip()
    except OSError:
        return ""


class WorkloadDriver:
    def __init__(
        self,
        node: SimNode | Sequence[SimNode],
        profiles: dict[int, LoadProfile],
        clock: Callable[[], float],
        *,
        noise: float = 0.0,
        seed: int = 0,
        groups: Sequence[GroupLoad] = (),
    ) -> None:
        if not 0.0 <= noise < 1.0:
            raise ValueError("noise must be in [0, 1)")
        # One node, or several nodes of a cluster (vmids are unique across them).
        self.nodes = [node] if isinstance(node, SimNode) else list(node)
        if not self.nodes:
            raise ValueError("a workload needs at least one node")
        self.node = self.nodes[0]
        self.profiles = dict(profiles)
        self.groups = tuple(groups)
        self.clock = clock
        self._root = str(self.node.root)
        self._t = 0.0  # profile time: seconds since the driver started
        self._last = clock()
        self._carry: dict[int, float] = {}  # sub-microsecond CPU left over per CT
        self.noise = noise
        self._random = random.Random(seed)  # noqa: S311 - load noise, not a secret
        # OOM kills of each CT's service seen so far, and when a killed service is back.
        self.kills: dict[int, int] = {}
        self._seen_oom: dict[int, int] = {}
        self._down_until: dict[int, float] = {}
        # pvestatd runs beside the load, on the same clock: first pass one period in.
        self.pvestatd_period_s = settings.pvestatd_period_s(self._root)
        self._next_pvestatd = self.pvestatd_period_s
        # Boot: each running CT's start stamp and when (profile time) it serves load.
        # Those running when the driver starts are up already.
        self._started: dict[int, str] = {}
        self._ready_at: dict[int, float] = {}
        for sim in self.nodes:
            for vmid in self._running_vmids(sim):
                self._started[vmid] = _start_stamp(str(sim.root), vmid)
                self._ready_at[vmid] = 0.0
        self.shares: dict[int, float] = {}  # CPU demand each CT got on the last tick

    @staticmethod
    def _running_vmids(sim: SimNode) -> list[int]:
        try:
            return [vmid for vmid in sim.vmids() if sim.is_running(vmid)]
        except FileNotFoundError:
            return []

    def booted(self, vmid: int) -> bool:
        """Whether a running CT has finished booting (by the driver's clock)."""
        return self._t >= self._ready_at.get(vmid, math.inf)

    def _note_boots(self, sim: SimNode, running: list[int]) -> None:
        boot_s = settings.boot_s(str(sim.root))
        for vmid in running:
            stamp = _start_stamp(str(sim.root), vmid)
            if self._started.get(vmid) != stamp:  # started (or restarted) since the last tick
                self._started[vmid] = stamp
                self._ready_at[vmid] = self._t + boot_s

    def _group_members(self, running: dict[int, SimNode]) -> dict[int, GroupLoad]:
        """Booted, running CTs without a profile of their own -> their group."""
        out: dict[int, GroupLoad] = {}
        if not self.groups:
            return out
        for vmid, sim in running.items():
            if vmid in self.profiles or not self.booted(vmid):
                continue
            try:
                tags = schema.split_list(sim.read_conf(vmid).get("tags", ""))
            except OSError:
                continue
            for group in self.groups:
                if group.tag.lower() in (t.lower() for t in tags):
                    out[vmid] = group
                    break
        return out

    def run_pvestatd(self) -> None:
        """Run one pvestatd pass now on every node (status for pvesh, cpuset rebalance)."""
        for sim in self.nodes:
            pvestatd.run_pass(str(sim.root), self._t)

    @property
    def elapsed(self) -> float:
        return self._t

    def advance(self, dt_seconds: float) -> None:
        """Account `dt_seconds` of load for every running container, then host totals."""
        if dt_seconds < 0:
            raise ValueError("time only moves forward")
        running: dict[int, SimNode] = {}
        for sim in self.nodes:
            vmids = self._running_vmids(sim)
            self._note_boots(sim, vmids)
            running.update(dict.fromkeys(vmids, sim))
        members = self._group_members(running)
        counts: dict[str, int] = {}
        for member_of in members.values():
            counts[member_of.name] = counts.get(member_of.name, 0) + 1
        totals = {str(sim.root): [0, 0] for sim in self.nodes}
        self.shares = {}
        for vmid, sim in sorted(running.items()):
            group = members.get(vmid)
            profile = group.profile if group else self.profiles.get(vmid)
            if profile is None:
                continue
            share = 1.0 / counts[group.name] if group else 1.0
            booting = not self.booted(vmid)
            try:
                anon, cache = self._advance_one(sim, vmid, profile, dt_seconds, share, booting)
            except FileNotFoundError:
                continue  # stopped mid-tick
            self.shares[vmid] = 0.0 if booting else profile.phase_at(self._t)[0].cpu_cores_demand * share
            totals[str(sim.root)][0] += anon * 1024
            totals[str(sim.root)][1] += cache * 1024
        self._t += dt_seconds
        if self._t >= self._next_pvestatd:
            self.run_pvestatd()
            self._next_pvestatd = self._t + self.pvestatd_period_s
        for sim in self.nodes:
            used_kb, cache_kb = totals[str(sim.root)]
            write_atomic(
                paths.meminfo_path(str(sim.root)), render_meminfo(sim.host_memory_mb, used_kb, cache_kb)
            )

    def advance_to_now(self) -> float:
        """Advance by the clock time since the last call; returns that dt."""
        now = self.clock()
        dt = max(now - self._last, 0.0)
        self._last = now
        self.advance(dt)
        return dt

    def _advance_one(
        self, sim: SimNode, vmid: int, profile: LoadProfile, dt: float, share: float, booting: bool
    ) -> tuple[int, int]:
        root = str(sim.root)
        limits = _read_limits(root, vmid, sim.host_cores)
        if limits is None:
            return 0, 0
        directory = paths.cgroup_dir(root, vmid)
        self._add_cpu(vmid, directory, profile, limits, dt, 0.0 if booting else share)
        phase, _ = profile.phase_at(self._t + dt)
        if booting:  # a booting CT holds its base memory only; its service is not up yet
            phase = Phase(phase.duration_s, 0.0, cgroup.BASE_ANON_MB, 0)
        return self._set_memory(root, vmid, directory, phase, limits, dt)

    def _add_cpu(
        self, vmid: int, directory: str, profile: LoadProfile, limits: _Limits, dt: float, share: float = 1.0
    ) -> None:
        factor = 1.0 + self._random.uniform(-self.noise, self.noise) if self.noise else 1.0
        factor *= share
        used = profile.cpu_seconds(self._t, dt, limits.cores, factor) * 1e6 + self._carry.get(vmid, 0.0)
        inc = int(used)
        self._carry[vmid] = used - inc
        stat_path = os.path.join(directory, "cpu.stat")
        stat = cgroup.parse_kv(read_text(stat_path))
        user_inc = int(inc * USER_SHARE)
        stat["usage_usec"] = stat.get("usage_usec", 0) + inc
        stat["user_usec"] = stat.get("user_usec", 0) + user_inc
        stat["system_usec"] = stat.get("system_usec", 0) + inc - user_inc
        write_atomic(stat_path, cgroup.format_kv(stat, cgroup.CPU_STAT_KEYS))
        demand = profile.phase_at(self._t)[0].cpu_cores_demand * factor
        stall = max(0.0, 1 - limits.cores / demand) * 100 if demand > 0 else 0.0
        self._write_psi(os.path.join(directory, "cpu.pressure"), stall, 0.0, dt)

    def _set_memory(
        self, root: str, vmid: int, directory: str, phase: Phase, limits: _Limits, dt: float
    ) -> tuple[int, int]:
        """Returns (anon MB, cache MB) now resident."""
        self._note_kills(vmid, directory)
        demand = phase.memory_mb_demand
        if self._t < self._down_until.get(vmid, -1.0):
            demand = min(demand, cgroup.BASE_ANON_MB)  # the service is restarting
        cgroup.write_memory(root, vmid, demand * MIB, phase.cache_mb * MIB)
        write_atomic(os.path.join(directory, "memory.swap.current"), "0\n")
        cgroup.enforce_memory_max(root, vmid)
        self._note_kills(vmid, directory)
        stat = cgroup.parse_kv(read_text(os.path.join(directory, "memory.stat")))
        anon, cache = stat.get("anon", 0) // MIB, stat.get("file", 0) // MIB
        self._bump_events(directory, phase, limits.memory_mb)
        overflow = max(phase.memory_mb_demand - limits.memory_mb, 0)
        stall = overflow / phase.memory_mb_demand * 100 if overflow and phase.memory_mb_demand else 0.0
        self._write_psi(os.path.join(directory, "memory.pressure"), stall, stall / 2, dt)
        return anon, cache

    def _note_kills(self, vmid: int, directory: str) -> None:
        """A new oom_kill in memory.events (by this driver or by a `pct set`) took the
        service down: record it, and restart the service RESTART_S later."""
        events = cgroup.parse_kv(read_text(os.path.join(directory, "memory.events")))
        count = events.get("oom_kill", 0)
        seen = self._seen_oom.get(vmid, 0)
        self._seen_oom[vmid] = count
        if count > seen:
            self.kills[vmid] = self.kills.get(vmid, 0) + count - seen
            self._down_until[vmid] = self._t + RESTART_S

    def _bump_events(self, directory: str, phase: Phase, limit_mb: int) -> None:
        if phase.memory_mb_demand + phase.cache_mb <= limit_mb * 1016 / 1024:
            return
        path = os.path.join(directory, "memory.events")
        events = cgroup.parse_kv(read_text(path))
        events["high"] = events.get("high", 0) + 1
        write_atomic(path, cgroup.format_kv(events, cgroup.MEMORY_EVENT_KEYS))

    @staticmethod
    def _write_psi(path: str, some_pct: float, full_pct: float, dt: float) -> None:
        prev = _read_psi(path)
        write_atomic(
            path,
            cgroup.format_psi(_next_psi(prev["some"], some_pct, dt), _next_psi(prev["full"], full_pct, dt)),
        )

    def run(
        self,
        stop: threading.Event | float,
        tick_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Advance in real time until `stop` is set, or until clock() reaches `stop`
        when it is a deadline in the clock's seconds."""
        self._last = self.clock()
        while True:
            if isinstance(stop, threading.Event):
                if stop.wait(tick_s):
                    break
            else:
                now = self.clock()
                if now >= stop:
                    break
                sleep(min(tick_s, stop - now))
            self.advance_to_now()
        self.advance_to_now()


def main(argv: list[str] | None = None) -> int:
    from simnode.scenario import load_scenario

    parser = argparse.ArgumentParser(prog="python -m simnode.workload", description=__doc__)
    parser.add_argument("--root", required=True, type=Path, help="node tree root")
    parser.add_argument("--profile", required=True, type=Path, help="scenario JSON file")
    parser.add_argument("--tick", type=float, default=0.5, help="seconds between updates")
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--noise", type=float, default=0.0, help="CPU demand swings by +-F per tick (0-0.99)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    args = parser.parse_args(argv)
    if not 0.0 <= args.noise < 1.0:
        parser.error("--noise must be at least 0 and below 1")
    scenario = load_scenario(args.profile)
    if (args.root / "etc" / "pve" / "lxc").is_dir():
        node = SimNode.open(args.root)  # already built (e.g. by the demo): keep its state
    else:
        node = scenario.build(args.root)
    driver = WorkloadDriver(
        node, scenario.profiles, time.monotonic, noise=args.noise, seed=args.seed, groups=scenario.groups
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.duration is not None:
        threading.Timer(args.duration, stop.set).start()
    print(
        f"simnode workload: {len(scenario.profiles)} containers, {len(scenario.groups)} groups "
        f"on {node.node_name}, tick {args.tick}s, root {node.root}",
        flush=True,
    )
    driver.run(stop, tick_s=args.tick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
