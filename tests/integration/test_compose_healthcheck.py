"""deploy/healthcheck.py --ready, the compose healthcheck of every long-running service:
healthy exactly when the service's own /readyz says so. A real decider process (port 0,
its bound port written to a file, as compose.ci.yaml runs several replicas on the host
network) against the shipped broker; the check is run as the container runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.secure_broker import ShippedBroker

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HEALTHCHECK = REPO / "deploy" / "healthcheck.py"


def check(port_file: Path, fixed_port: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
        "LXC_AUTOSCALE_METRICS_PORT_FILE": str(port_file), "LXC_AUTOSCALE_METRICS_PORT": fixed_port,
    }  # fmt: skip
    return subprocess.run([sys.executable, str(HEALTHCHECK), "--ready", "--timeout", "3"],
                          env=env, capture_output=True, text=True, timeout=20, check=False)  # fmt: skip


def wait_until(predicate: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


async def test_ready_follows_the_deciders_readyz_through_a_broker_outage(
    shipped_broker: ShippedBroker, tmp_path: Path
) -> None:
    port_file = tmp_path / "metrics-port"
    config = tmp_path / "config.yaml"
    config.write_text("DEFAULT: {}\n")
    before = check(port_file)
    assert before.returncode == 1
    assert "has not said its metrics port" in before.stderr  # nothing started yet
    log = tmp_path / "decider.log"
    with log.open("wb") as sink:
        decider = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "decider", "--config", str(config), "--log-format", "json",
             "--nats-url", shipped_broker.url_for("decider"), "--metrics-port", "0",
             "--metrics-port-file", str(port_file)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    try:
        wait_until(lambda: check(port_file).returncode == 0)
        port = int(port_file.read_text())
        assert port > 0  # the bound port, not the 0 asked for
        shipped_broker.stop()
        wait_until(lambda: check(port_file).returncode == 1)
        down = check(port_file)
        assert "not ready" in down.stderr and "nats_connected" in down.stderr, down.stderr
        assert decider.poll() is None  # unhealthy, not dead: it reconnects by itself
        shipped_broker.start()
        wait_until(lambda: check(port_file).returncode == 0, timeout_s=60)
        # A fixed port (one service per network namespace) works without the file.
        assert check(tmp_path / "absent", fixed_port=str(port)).returncode == 0
    finally:
        decider.terminate()
        decider.wait(20)
    stopped = check(port_file)
    assert stopped.returncode == 1 and "no answer from /readyz" in stopped.stderr
