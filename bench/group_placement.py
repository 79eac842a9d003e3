"""Group scale-out benchmark: a clone on the source's node against one on another node.

Runs a private nats-server, a simulated two-node cluster with shared storage and pve1's
actuator in this process (local executor), and publishes group scale-outs one at a
time, alternating `target_node` None (same node: pct only) and pve2 (`pct clone --target
pve2`, then tags, net0, start and status through pvesh, which the simulated pvesh runs
on pve2 as its own process, as Proxmox's pvesh proxies over SSH). Per scale-out: the time
from publish to the `scaled-out` event, and the processes it ran on each node.
The simulated clone copies for 0 s here, so the figures are the actuator's and the
commands' own cost. The last line is JSON. Usage: python bench/group_placement.py [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from actuator_harness import EventReader, publish_intent, running_actuator  # noqa: E402
from group_harness import group_config, group_intent  # noqa: E402

from shared.embedded_broker import embedded_broker  # noqa: E402
from shared.nats_settings import open_connection  # noqa: E402
from shared.provisioning import provision  # noqa: E402
from simnode import settings  # noqa: E402
from simnode.tree import ContainerSpec, NodeSpec, SimCluster, build_cluster  # noqa: E402

STORAGE_CFG = (  # the source on local-lvm (node-local); clones onto pve2 go to tank (NFS, shared)
    "lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n\n"
    "nfs: tank\n\tpath /mnt/pve/tank\n\tserver 10.0.0.9\n\texport /srv/tank\n\tcontent rootdir\n"
)


def cluster(root: Path) -> SimCluster:
    built = build_cluster(
        root,
        [NodeSpec("pve1", 16, 32768, (ContainerSpec(101, "web", 2, 1024, tags="web"),)),
         NodeSpec("pve2", 16, 32768, ())],
        storage_cfg=STORAGE_CFG,
    )  # fmt: skip
    for node in built.nodes.values():
        settings.configure(node.root, clone_s=0.0)
    return built


async def run(rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, embedded_broker(Path(tmp) / "nats") as broker:
        sim = cluster(Path(tmp) / "cluster")
        pve1, pve2 = sim.node("pve1"), sim.node("pve2")
        nc = await open_connection(broker.url)
        js = nc.jetstream()
        await provision(js)
        config = group_config(clone_network_type="dhcp", static_ip_range=[], target_storage="tank")
        times: dict[str, list[float]] = {"same": [], "other": []}
        spawns: dict[str, list[tuple[int, int, int]]] = {"same": [], "other": []}
        async with running_actuator(nc, pve1, config=config, command_timeout_s=30.0):
            reader = await EventReader.open(js)
            for n in range(2 * rounds):
                kind = "same" if n % 2 == 0 else "other"
                before = (len(pve1.pct_calls()), len(pve1.pvesh_calls()), len(pve2.pvesh_calls()))
                intent = group_intent(source_id=f"bench:{n}", target_node="pve2" if kind == "other" else None)
                started = time.perf_counter()
                await publish_intent(js, intent)  # type: ignore[arg-type]
                [event] = await reader.take(1, timeout_s=60)
                times[kind].append((time.perf_counter() - started) * 1000)
                assert event.detail == "scaled-out", event
                after = (len(pve1.pct_calls()), len(pve1.pvesh_calls()), len(pve2.pvesh_calls()))
                spawns[kind].append((after[0] - before[0], after[1] - before[1], after[2] - before[2]))
        await nc.close()
    result: dict[str, Any] = {}
    for kind in ("same", "other"):
        result[f"{kind}_node_ms_p50"] = round(statistics.median(times[kind]), 1)
        result[f"{kind}_node_ms_max"] = round(max(times[kind]), 1)
        pct, pvesh_here, pvesh_there = spawns[kind][-1]
        result[f"{kind}_node_processes"] = {"pct": pct, "pvesh_pve1": pvesh_here, "pvesh_pve2": pvesh_there}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="scale-outs of each kind")
    args = parser.parse_args()
    result = asyncio.run(run(args.rounds))
    for kind, label in (("same", "same node (pct)"), ("other", "onto pve2 (pct clone --target, pvesh)")):
        print(
            f"{label}: publish -> event p50 {result[f'{kind}_node_ms_p50']} ms, "
            f"max {result[f'{kind}_node_ms_max']} ms; processes {result[f'{kind}_node_processes']}"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
