"""Actuator benchmark: intents applied per second through the simulated pct.

Runs a private nats-server, a simulated Proxmox node and the actuator in this process
(local executor), publishes chains of intents and measures, per intent, the time from
publish to its event. The pct command's own time is measured apart (each applied intent
runs pct once, `pct set`; the precondition and read-back come from the config file, see
docs/actuator.md "One pct per intent"). Throughput comes from a burst of chained intents
for every container; latency from intents sent one at a time (no queue in front). Over
SSH (when an OpenSSH server can be started here) it compares the first command, which
pays for connecting, with a pooled one.
The last line is JSON. Usage: python bench/actuator.py [--runs 5] [--containers 40] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


from services.actuator.commands import HostLimits, argv, read_config  # noqa: E402
from services.actuator.executors.local import LocalExecutor  # noqa: E402
from services.actuator.wiring import build_actuator, node_consumer  # noqa: E402
from shared import subjects  # noqa: E402
from shared.codec import decode, encode  # noqa: E402
from shared.config import ActuatorSettings, parse_config  # noqa: E402
from shared.embedded_broker import embedded_broker  # noqa: E402
from shared.models import DecisionReason, ResourceSize, ScaleEvent, ScaleIntent  # noqa: E402
from shared.nats_settings import open_connection  # noqa: E402
from shared.provisioning import provision  # noqa: E402
from simnode.tree import ContainerSpec, build_node  # noqa: E402

HOST = HostLimits(cores=64, memory_mb=262144)
REASON = DecisionReason(rule="scale-up", summary="bench")


def chain(node: str, vmid: int, rounds: int) -> list[ScaleIntent]:
    now = datetime.now(UTC)
    return [
        ScaleIntent.build(
            node=node,
            vmid=vmid,
            expected=ResourceSize(cores=1 + r, memory_mb=512),
            target=ResourceSize(cores=2 + r, memory_mb=512),
            reason=REASON,
            source_id=f"bench:{r}",
            created_at=now,
            ttl_s=600,
        )
        for r in range(rounds)
    ]


async def one_run(containers: int, rounds: int, sequential: int = 20) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, embedded_broker(Path(tmp) / "nats") as broker:
        specs = [ContainerSpec(100 + i, f"ct{100 + i}", 1, 512) for i in range(1, containers + 1)]
        sim = build_node(Path(tmp) / "node", node_name="pve1", host_cores=HOST.cores,
                         host_memory_mb=HOST.memory_mb, containers=specs)  # fmt: skip
        nc = await open_connection(broker.url)
        js = nc.jetstream()
        settings = ActuatorSettings(pct_path=str(sim.pct_path), root=str(sim.root), command_timeout_s=10)
        # What `lxc-autoscale setup --node pve1` does: services only check what setup made.
        await provision(js, consumers=[(subjects.INTENTS_STREAM, node_consumer(settings, "pve1"))])
        # The chains grow cores up to 1 + rounds: the tier bounds must allow that.
        tiers = parse_config({"DEFAULT": {"max_cores": HOST.cores}}, env={})
        actuator = await build_actuator(
            nc=nc, node="pve1", settings=settings, executor=LocalExecutor(), limits=HOST, tiers=tiers
        )
        published: dict[str, float] = {}
        seen: dict[str, float] = {}
        outcomes: dict[str, int] = {}
        arrived = asyncio.Condition()

        async def on_event(msg: Any) -> None:
            event = decode(msg.data, ScaleEvent)
            seen[event.intent_id] = time.perf_counter() - published[event.intent_id]
            outcomes[event.outcome] = outcomes.get(event.outcome, 0) + 1
            async with arrived:
                arrived.notify_all()

        async def send(item: ScaleIntent) -> None:
            published[item.intent_id] = time.perf_counter()
            await js.publish(
                subjects.intents_subject("pve1"), encode(item), headers={"Nats-Msg-Id": item.intent_id}
            )

        async def wait_for(count: int) -> None:
            async with arrived:
                await asyncio.wait_for(arrived.wait_for(lambda: len(seen) >= count), 600)

        await nc.subscribe(subjects.EVENTS_ALL, cb=on_event)
        stop = asyncio.Event()
        service = asyncio.create_task(actuator.service.run(stop))
        # Throughput: a burst of chained intents for every container at once.
        burst = [i for spec in specs for i in chain("pve1", spec.vmid, rounds)]
        started = time.perf_counter()
        for item in burst:
            await send(item)
        await wait_for(len(burst))
        elapsed = time.perf_counter() - started
        # Latency without a queue in front: one intent at a time, publish -> event.
        lone = chain("pve1", specs[0].vmid, rounds + sequential)[rounds:]
        for n, item in enumerate(lone, start=1):
            await send(item)
            await wait_for(len(burst) + n)
        stop.set()
        await service
        assert outcomes == {"applied": len(burst) + len(lone)}, outcomes
        latencies = sorted(seen[i.intent_id] for i in lone)
        pct_times = []
        executor = LocalExecutor()
        for _ in range(20):
            result = await executor.run(argv(read_config(101), str(sim.pct_path)), 10)
            pct_times.append(result.duration_s)
        await nc.close()
    return {
        "intents_per_s": len(burst) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "pct_ms": 1000 * statistics.median(pct_times),
    }


async def ssh_run() -> dict[str, float]:
    from sshd import SshServer, _find  # the test fixture's server, reused here

    from services.actuator.executors.ssh import SshExecutor, SshTarget
    from shared.embedded_broker import free_port

    sshd, keygen = _find("sshd", "/usr/sbin/sshd"), _find("ssh-keygen", "/usr/bin/ssh-keygen")
    if sshd is None or keygen is None:
        raise RuntimeError("OpenSSH server not installed (apt-get install openssh-server)")

    with tempfile.TemporaryDirectory() as tmp:
        server = SshServer(directory=Path(tmp), port=free_port(), sshd=sshd, keygen=keygen)
        server.prepare()
        server.start()
        try:
            target = SshTarget(
                host="127.0.0.1",
                port=server.port,
                user=server.user,
                key_path=server.client_key,
                known_hosts_path=server.known_hosts,
            )
            executor = SshExecutor(target)
            first = (await executor.run(("true",), 10)).duration_s
            pooled = [(await executor.run(("true",), 10)).duration_s for _ in range(20)]
            await executor.close()
        finally:
            server.stop()
    return {"ssh_first_ms": 1000 * first, "ssh_pooled_ms": 1000 * statistics.median(pooled)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--containers", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    runs = []
    for n in range(args.runs):
        figures = asyncio.run(one_run(args.containers, args.rounds))
        print(f"run {n + 1}: " + ", ".join(f"{k}={v:.1f}" for k, v in figures.items()))
        runs.append(figures)
    result: dict[str, float | None] = {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}
    try:
        ssh = [asyncio.run(ssh_run()) for _ in range(args.runs)]
        for key in ("ssh_first_ms", "ssh_pooled_ms"):
            result[key] = round(statistics.median(r[key] for r in ssh), 2)
    except BaseException as exc:  # pytest.skip raises a BaseException subclass
        if isinstance(exc, KeyboardInterrupt):
            raise
        print(f"SSH figures unavailable: {exc}")
        result["ssh_first_ms"] = result["ssh_pooled_ms"] = None
    print(f"{args.containers} containers x {args.rounds} chained intents, median of {args.runs} runs")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
