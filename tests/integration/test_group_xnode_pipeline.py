"""A `placement: least-loaded` group from decision to both nodes' actuators on a simulated
two-node cluster: a decider reads both nodes' samples, places the clone on pve2 (the freer
node), pve1's actuator makes it there; when the group's load ends the decider sends the
scale-in to the clone's own node and pve2's actuator stops it.

The samples are made here from the simulated nodes (configs, running state, tags) with
the CPU the test sets: the collector confines its reads to its root and the simulated
cluster's shared /etc/pve is a symlink out of it (on Proxmox it is a mount)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import EventReader, running_actuator

from services.decider.service import DeciderService
from shared import subjects
from shared.codec import encode
from shared.config import parse_config
from shared.models import ContainerReading, HostTotals, NodeSample
from simnode.tree import ContainerSpec, NodeSpec, SimCluster, SimNode, build_cluster

pytestmark = pytest.mark.integration
SOURCE, BUSY = 101, 102
STORAGE_CFG = (
    "lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n\n"
    "nfs: tank\n\tpath /mnt/pve/tank\n\tserver 10.0.0.9\n\texport /srv/tank\n\tcontent rootdir\n"
)


def cluster_of_two(root: Path) -> SimCluster:
    """pve1 runs the source and a container that takes the rest of its 4 cores; pve2 is idle."""
    return build_cluster(
        root,
        [
            NodeSpec("pve1", 4, 8192, (ContainerSpec(SOURCE, "app", 1, 512, tags="app"),
                                       ContainerSpec(BUSY, "batch", 3, 4096))),
            NodeSpec("pve2", 4, 8192, ()),
        ],
        storage_cfg=STORAGE_CFG,
    )  # fmt: skip


def pipeline_config(url: str) -> Any:
    return parse_config(
        {
            "HORIZONTAL_SCALING_GROUP_app": {
                "base_snapshot_name": SOURCE, "min_instances": 1, "max_instances": 2,
                "placement": "least-loaded", "target_storage": "tank",
                "horiz_cpu_upper_threshold": 80, "horiz_cpu_lower_threshold": 20,
                "horiz_memory_upper_threshold": 95, "horiz_memory_lower_threshold": 90,
                "scale_out_grace_period": 2, "scale_in_grace_period": 2, "ready_after_s": 2,
                "action_timeout_s": 30,
            },
            # the vertical policy keeps its hands off: what happens is the group's doing
            "TIER_still": {"lxc_containers": [SOURCE, BUSY, *range(200, 210)], "pause": "all"},
            "DECIDER": {"intent_ttl_s": 60},
            "NATS": {"url": url},
        },
        env={},
    )  # fmt: skip


class Samples:
    """Each node's sample every second, as a collector would send it: its containers (from
    the simulated node), the group's CPU share `cpu_pct` on every running member."""

    def __init__(self, nc: Any, cluster: SimCluster) -> None:
        self.js, self.cluster, self.cpu_pct, self.seq = nc.jetstream(), cluster, 100.0, 0

    def sample(self, name: str, node: SimNode) -> NodeSample:
        readings = []
        for vmid in node.vmids():
            conf, running = node.read_conf(vmid), node.is_running(vmid)
            tags = tuple(conf.get("tags", "").split(";")) if conf.get("tags") else ()
            readings.append(ContainerReading(
                vmid=vmid, status="running" if running else "stopped", cores=int(conf["cores"]),
                memory_mb=int(conf["memory"]), tags=tags, running_for_s=600 if running else None,
                cpu_pct=(self.cpu_pct if "app" in tags else 5.0) if running else None,
                memory_pct=40.0 if running else None,
            ))  # fmt: skip
        up = [r for r in readings if r.status == "running"]
        host = HostTotals(
            cores=4, memory_mb=8192, allocated_cores_running=sum(r.cores for r in up),
            allocated_memory_mb_running=sum(r.memory_mb for r in up),
            allocated_cores_all=sum(r.cores for r in readings),
            allocated_memory_mb_all=sum(r.memory_mb for r in readings),
        )  # fmt: skip
        return NodeSample(
            node=name, seq=self.seq, boot_id="boot", taken_at=datetime.now(UTC), interval_s=1.0,
            source="sim", host=host, containers=tuple(readings),
        )  # fmt: skip

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.seq += 1
            for name, node in self.cluster.nodes.items():
                await self.js.publish(subjects.metrics_subject(name), encode(self.sample(name, node)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


@contextlib.asynccontextmanager
async def deciding(nc: Any, broker: Any, samples: Samples) -> AsyncIterator[None]:
    config, stop = pipeline_config(broker.url), asyncio.Event()
    tasks = [asyncio.create_task(samples.run(stop)),
             asyncio.create_task(DeciderService(config, replica_id="r1").run(stop))]  # fmt: skip
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def test_a_least_loaded_group_grows_onto_the_freer_node_and_shrinks_there(
    broker: Any, nc: Any, tmp_path: Path
) -> None:
    cluster = cluster_of_two(tmp_path / "cluster")
    pve1, pve2 = cluster.node("pve1"), cluster.node("pve2")
    js, config, samples = nc.jetstream(), pipeline_config(broker.url), Samples(nc, cluster)
    out_reader = await EventReader.open(js, node="pve1")
    async with (
        running_actuator(nc, pve1, config=config),
        running_actuator(nc, pve2, config=config, node="pve2"),
        deciding(nc, broker, samples),
    ):
        [out] = await out_reader.take(1, timeout_s=60)  # the source at 100 %: one more member
        assert (out.outcome, out.detail) == ("applied", "scaled-out"), out
        assert out.group is not None and out.group.target_node == "pve2"
        clone = out.vmid
        assert cluster.where(clone) == "pve2" and pve2.is_running(clone)
        assert "autoscale-group-app" in pve2.read_conf(clone)["tags"]

        samples.cpu_pct = 10.0  # the load ends
        # opened only now: an ephemeral consumer left idle meanwhile may have been reaped
        [removed] = await (await EventReader.open(js, node="pve2")).take(1, timeout_s=60)
        assert (removed.outcome, removed.detail, removed.node, removed.vmid) == (
            "applied", "scaled-in", "pve2", clone,
        ), removed  # fmt: skip
        # one scale-out, never a second (a fresh reader: the first one idled meanwhile)
        again = await EventReader.open(js, node="pve1")
        assert len(await again.take(1)) == 1 and await again.nothing_more(wait_s=1.0) == []
    assert not pve2.is_running(clone) and pve1.is_running(SOURCE) and cluster.where(SOURCE) == "pve1"
    # the scale-in ran on pve2 with its own pct; pve1's actuator never touched the clone again
    assert [call for call in pve2.pct_calls() if call[0] != "status"] == [["stop", str(clone)]]
