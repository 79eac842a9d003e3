"""A service or tool started while NATS is down: it waits for the broker, but SIGTERM still
stops it at once (systemd and compose stop it without a SIGKILL), and a command line tool
gives up with a message that names the broker instead of hanging."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.embedded_broker import free_port
from shared.nats_settings import TOOL_CONNECT_WAIT_S

REPO = Path(__file__).parents[2]
CONFIG = """\
COLLECTOR:
  node: pve9
ACTUATOR:
  node: pve9
  host_cores: 8
  host_memory_mb: 16384
CONSOLE:
  port: 0
"""
SERVICES = {
    "collector": ["--interval", "0.5", "--source", "sim"],
    "decider": [],
    "actuator": [],
    "console": [],
    "notifier": [],
}


def _start(tmp_path: Path, command: str, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    config = tmp_path / "lxc_autoscale.yaml"
    config.write_text(CONFIG)
    url = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", command, "--config", str(config), "--nats-url", url,
         "--log-format", "json", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return process, url


@pytest.mark.parametrize("command", sorted(SERVICES))
def test_a_service_waiting_for_nats_stops_on_sigterm(tmp_path: Path, command: str) -> None:
    extra = list(SERVICES[command])
    if command == "collector":
        extra += ["--root", str(tmp_path / "node")]
        (tmp_path / "node").mkdir()
    process, _ = _start(tmp_path, command, extra)
    try:
        deadline = time.monotonic() + 60
        output: list[str] = []
        assert process.stdout is not None
        while time.monotonic() < deadline:  # the service has tried the broker: it is waiting
            line = process.stdout.readline()
            output.append(line)
            if "nats_error" in line or "nats_unreachable" in line or not line:
                break
        assert process.poll() is None, f"{command} exited instead of waiting:\n{''.join(output)}"
        process.send_signal(signal.SIGTERM)
        try:
            rest, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{command} ignored SIGTERM while NATS was down")
        assert process.returncode == 0, "".join(output) + rest
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_a_tool_gives_up_on_a_broker_that_is_down_and_says_which(tmp_path: Path) -> None:
    process, url = _start(tmp_path, "queue", [])
    try:
        out, _ = process.communicate(timeout=TOOL_CONNECT_WAIT_S + 45)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("lxc-autoscale queue hung on a broker that is down")
    assert process.returncode == 1
    assert f"NATS at {url} did not answer within {TOOL_CONNECT_WAIT_S:g} s" in out
