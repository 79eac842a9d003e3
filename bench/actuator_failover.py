"""Actuator failover benchmark: how long a node goes without an actuator when the one
holding its lease is SIGKILLed and a standby runs.

Per run: a private nats-server, a simulated node, two `lxc-autoscale actuator` processes
for it; once the first holds the node's lease and the second stands by, the first is
SIGKILLed and an intent is published at once. Measured from the kill: the standby taking
the lease (the KV record names it) and the intent's `applied` event. Expected: between
lease_ttl - ack_wait/3 (the last renewal came before the kill) and 1.5 x lease_ttl
(docs/actuator.md "Two actuators for one node", figures in docs/performance.md).
The last line is JSON. Usage: python bench/actuator_failover.py [--runs 3] [--command-timeout 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from actuator_harness import (  # noqa: E402
    EventReader,
    actuator_process,
    intent,
    publish_intent,
    setup_node,
    sim_node,
)
from nats.js.errors import NotFoundError  # noqa: E402

from services.actuator.leadership import lease_key  # noqa: E402
from services.actuator.records import LeaseRecord  # noqa: E402
from services.actuator.retry import consumer_timing  # noqa: E402
from services.actuator.wiring import retry_policy  # noqa: E402
from shared import subjects  # noqa: E402
from shared.config import load_config  # noqa: E402
from shared.embedded_broker import embedded_broker  # noqa: E402
from shared.nats_settings import open_connection  # noqa: E402
from shared.provisioning import provision  # noqa: E402


async def holder_pid(js: Any) -> int | None:
    kv = await js.key_value(subjects.ACTUATOR_BUCKET)
    try:
        entry = await kv.get(lease_key("pve1"))
    except NotFoundError:
        return None
    return int(LeaseRecord.model_validate_json(entry.value).holder.split(":")[1])


async def until(check: Any, timeout_s: float) -> float:
    """Poll `check` every 50 ms; the monotonic time it first held."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.05)
    return time.monotonic()


async def one_run(workdir: Path, config: Path, timeout_s: float) -> dict[str, float]:
    with embedded_broker(workdir / "nats") as broker:
        client = await open_connection(broker.url)
        js = client.jetstream()
        processes: list[Any] = []
        try:
            await provision(js)
            await setup_node(js, load_config(config, env={}).actuator)
            sim = sim_node(workdir / "node", (101, 2, 1024))
            leader = actuator_process(broker, sim, config, None, log=workdir / "leader.log")
            processes.append(leader)
            await until(lambda: _is(js, leader.pid), 60)
            standby = actuator_process(broker, sim, config, None, log=workdir / "standby.log")
            processes.append(standby)
            await asyncio.sleep(2.0)  # the standby has bound the consumer and watches the lease
            os.kill(leader.pid, signal.SIGKILL)
            killed = time.monotonic()
            await publish_intent(js, intent(101))
            took_over = await until(lambda: _is(js, standby.pid), timeout_s)
            reader = await EventReader.open(js)
            [event] = await reader.take(1, timeout_s=timeout_s)
            applied = time.monotonic()
            assert event.outcome == "applied", event
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait(10)
            await client.close()
    return {"takeover_s": round(took_over - killed, 2), "first_event_s": round(applied - killed, 2)}


async def _is(js: Any, pid: int) -> bool:
    return await holder_pid(js) == pid


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--command-timeout", type=float, default=30.0, help="ACTUATOR.command_timeout_s")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "autoscale.yaml"
        config.write_text(f"ACTUATOR:\n  command_timeout_s: {args.command_timeout}\n")
        timing = consumer_timing(retry_policy(load_config(config, env={}).actuator))
        for number in range(args.runs):
            workdir = Path(tmp) / f"run{number}"
            runs.append(await one_run(workdir, config, timing.lease_ttl_s * 3))
            print(f"run {number + 1}: {runs[-1]}", file=sys.stderr)
    result = {
        "command_timeout_s": args.command_timeout,
        "ack_wait_s": timing.ack_wait_s,
        "lease_ttl_s": timing.lease_ttl_s,
        "runs": args.runs,
        "takeover_s_median": statistics.median(r["takeover_s"] for r in runs),
        "first_event_s_median": statistics.median(r["first_event_s"] for r in runs),
        "takeover_s": [r["takeover_s"] for r in runs],
        "first_event_s": [r["first_event_s"] for r in runs],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
