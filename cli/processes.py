"""Run the services as separate processes, the way they are deployed, and stop
them all on exit, on Ctrl-C and on errors."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]


@dataclass
class ProcessGroup:
    log_dir: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    members: list[ServiceProcess] = field(default_factory=list)

    def start(self, name: str, args: list[str]) -> ServiceProcess:
        """Start `python -m <args>` with its output in <log_dir>/<name>.log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,  # Ctrl-C goes to the demo only, which then stops them all
        )
        member = ServiceProcess(name=name, process=process, log_path=log_path, log_file=log_file)
        self.members.append(member)
        return member

    def dead(self) -> list[ServiceProcess]:
        return [m for m in self.members if m.process.poll() is not None]

    def stop_all(self, timeout_s: float = 10.0) -> None:
        # SIGTERM to every member at once, newest first (the demo starts the collector last,
        # so it is told first); then wait for each. Nothing waits for another to drain: each
        # service finishes what it holds on SIGTERM, and the streams keep the rest.
        for member in reversed(self.members):
            if member.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    member.process.send_signal(signal.SIGTERM)
        for member in reversed(self.members):
            try:
                member.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                member.process.kill()
                member.process.wait(timeout_s)
            member.log_file.close()

    def tail(self, member: ServiceProcess, lines: int = 15) -> str:
        try:
            text = member.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
