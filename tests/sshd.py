"""A real OpenSSH server on 127.0.0.1 for tests, with throw-away keys.

`sshd_server` starts Debian's sshd (`-D -e -f <temp config>`) on a free port with a
temporary host key and an authorized key for the test's own key pair; `known_hosts`
holds the host key. `restart(new_host_key=True)` brings the server back on the same
port with a different key, as after a reinstall or a man in the middle. Tests skip,
saying why, when sshd or ssh-keygen cannot be found or the server will not start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared.embedded_broker import free_port

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def _find(name: str, *candidates: str) -> str | None:
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


@dataclass
class SshServer:
    directory: Path
    port: int
    sshd: str
    keygen: str
    user: str = field(default_factory=lambda: os.environ.get("USER") or "root")
    process: subprocess.Popen[bytes] | None = None
    generation: int = 0

    @property
    def client_key(self) -> Path:
        return self.directory / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    @property
    def host_key(self) -> Path:
        return self.directory / f"host_ed25519_{self.generation}"

    def prepare(self) -> None:
        _keygen(self.keygen, self.client_key)
        (self.directory / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        self._new_host_key()
        public = self.host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {public[0]} {public[1]}\n")

    def _new_host_key(self) -> None:
        _keygen(self.keygen, self.host_key)

    def start(self) -> None:
        config = self.directory / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    "PidFile none",
                    "UsePAM no",
                    "StrictModes no",
                    f"AuthorizedKeysFile {self.directory / 'authorized_keys'}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "Subsystem sftp internal-sftp",  # as Proxmox's sshd offers sftp (config reads)
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
        self.process = subprocess.Popen(
            [self.sshd, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                pytest.skip(f"sshd did not start: {error.strip()[:300]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(4) == b"SSH-":
                        return
            except OSError:
                pass
            time.sleep(0.02)
        pytest.skip("sshd did not accept connections within 10 s")

    def stop(self) -> None:
        """Stop the server and drop its open connections, as a reboot of the node would."""
        if self.process is not None and self.process.poll() is None:
            _kill_children(self.process.pid)
            self.process.terminate()
            self.process.wait(10)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def restart(self, *, new_host_key: bool = False) -> None:
        self.stop()
        if new_host_key:
            self.generation += 1
            self._new_host_key()
        self.start()


def _kill_children(pid: int) -> None:
    # Each connection is served by a child of the listening sshd; SIGTERM to the
    # listener alone would leave established sessions running.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def _keygen(keygen: str, path: Path) -> None:
    subprocess.run(
        [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "autoscale-test", "-f", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


@pytest.fixture
def sshd_server(tmp_path: Path) -> Iterator[SshServer]:
    sshd = _find("sshd", *SSHD_CANDIDATES)
    keygen = _find("ssh-keygen", "/usr/bin/ssh-keygen")
    if sshd is None or keygen is None:
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("sshd for tests runs as root here (it needs /run/sshd and to switch users)")
    directory = tmp_path / "sshd"
    directory.mkdir()
    server = SshServer(directory=directory, port=free_port(), sshd=sshd, keygen=keygen)
    server.prepare()
    server.start()
    yield server
    server.stop()
