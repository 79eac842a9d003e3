"""Ctrl-C during the demo stops every service and the private broker."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def test_ctrl_c_stops_the_services_and_the_embedded_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NATS_URL"}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "demo", "--workdir", str(tmp_path), "--forever",
         "--console-port", "0"],  # never the default 8089: demos run side by side
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    first = process.stdout.readline()
    match = re.search(r"broker nats://127\.0\.0\.1:(\d+)", first)
    assert match, first
    port = int(match.group(1))
    deadline = time.monotonic() + 20
    while len(_children_of(process.pid)) < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    children = _children_of(process.pid)
    assert len(children) >= 5, "broker, workload, actuator, deciders and collector should run"

    process.send_signal(signal.SIGINT)
    output = process.stdout.read()
    process.stdout.close()
    assert process.wait(timeout=30) == 130
    assert output.strip().splitlines()[-1].startswith("summary: intents=")
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the embedded broker is still listening"
