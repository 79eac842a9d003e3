"""Helpers for the cluster tests and the chaos run: service processes signed in with every
server's URL, which server a client is on, and the stream leader moved or found."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from simnode.tree import SimNode
from tests.secure_broker import ShippedBroker, ShippedCluster

PROJECT = Path(__file__).resolve().parents[1]
FAST_ACTUATOR = """\
ACTUATOR:
  command_timeout_s: 10  # the simulated pct is a Python process; a busy machine is slow to start one
  max_attempts: 3
  backoff_initial_s: 0.05
  backoff_max_s: 0.2
"""


def service_env() -> dict[str, str]:
    """This environment without anything that would point a service elsewhere."""
    pointing = ("NATS_", "AUTOSCALE_", "LXC_AUTOSCALE_")
    return {k: v for k, v in os.environ.items() if not k.startswith(pointing)}


def actuator_process(
    cluster: ShippedCluster, sim: SimNode, config: Path, node: str, log: Path
) -> subprocess.Popen[bytes]:
    """`lxc-autoscale actuator` for `node`, given every server's URL, logging to `log`."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [
                sys.executable, "-m", "cli.main", "actuator", "--config", str(config),
                "--nats-url", cluster.url_for("actuator", node), "--node", node,
                "--pct", str(sim.pct_path), "--root", str(sim.root),
                "--host-cores", "16", "--host-memory-mb", "32768", "--log-format", "json",
            ],
            cwd=PROJECT, env=service_env(), stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip


def decider_process(
    cluster: ShippedCluster, config: Path, replica: str, log: Path
) -> subprocess.Popen[bytes]:
    """`lxc-autoscale decider`, given every server's URL, logging to `log`."""
    with log.open("ab") as sink:
        return subprocess.Popen(
            [
                sys.executable, "-m", "cli.main", "decider", "--config", str(config),
                "--nats-url", cluster.url_for("decider"), "--replica-id", replica, "--log-format", "json",
            ],
            cwd=PROJECT, env=service_env(), stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip


def logged_events(log: Path) -> list[str]:
    """The `event` of every JSON line of a service's log."""
    events = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            events.append(str(json.loads(line).get("event", "")))
        except ValueError:
            continue
    return events


def connection_names(server: ShippedBroker) -> list[str]:
    """The names of the clients connected to `server` (its monitoring endpoint)."""
    url = f"http://127.0.0.1:{server.monitor_port}/connz?limit=1024"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return [c.get("name", "") for c in json.load(answer).get("connections", [])]


async def server_of(cluster: ShippedCluster, client_name: str, timeout_s: float = 20.0) -> ShippedBroker:
    """The running server the client named `client_name` is connected to."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        for server in cluster.servers:
            if server.running and client_name in await asyncio.to_thread(connection_names, server):
                return server
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no server has a client named {client_name!r}")
        await asyncio.sleep(0.1)


async def stream_leader(js: Any, stream: str) -> str:
    info = await js.stream_info(stream)
    assert info.cluster is not None and info.cluster.leader, f"{stream} has no leader: {info.cluster}"
    return str(info.cluster.leader)


async def move_leader(nc: Any, stream: str, to: str, timeout_s: float = 30.0) -> None:
    """Ask the stream's leader to step down in favour of server `to` until it is there."""
    js = nc.jetstream(timeout=5)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            if await stream_leader(js, stream) == to:
                return
            request = json.dumps({"placement": {"preferred": to}}).encode()
            await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{stream}", request, timeout=5)
        except Exception:
            pass
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the leader of {stream} would not move to {to}")
        await asyncio.sleep(0.5)
