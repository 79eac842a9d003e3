"""Run commands on a Proxmox node over SSH (paramiko, in a worker thread).

Host keys are always verified. Policies (DEFAULT.ssh_host_key_policy):
- `reject` (default): only keys in `ssh_known_hosts_path` (or ~/.ssh/known_hosts) are
  trusted; an unknown host is refused.
- `system`: as `reject`, and the system-wide /etc/ssh/ssh_known_hosts is trusted too.
  (The original mapped this to paramiko's WarningPolicy, which connects to anyone.)
- `auto`: trust on first use (AutoAddPolicy) with a loud warning; the first key seen is
  kept for the life of the process (and written to `ssh_known_hosts_path` when set), so a
  key that *changed* is still refused. For labs only.
Connections are pooled per host and checked (transport active + SSH ignore packet)
before reuse; a dead one is replaced. The remote command is `shlex.join` of the
validated tokens, wrapped in coreutils `timeout` so a hung pct is killed on the node.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import paramiko
from pydantic import SecretStr

from services.actuator.result import CommandResult
from shared.validation import check_host_name

log = logging.getLogger(__name__)

SYSTEM_KNOWN_HOSTS = Path("/etc/ssh/ssh_known_hosts")
CONNECT_TIMEOUT_S = 10.0
KILL_GRACE_S = 2  # `timeout -k`: SIGKILL this long after SIGTERM
_MAX_OUTPUT = 256 * 1024
HostKeyPolicy = Literal["reject", "system", "auto"]


@dataclass(frozen=True)
class SshTarget:
    host: str
    port: int = 22
    user: str = "root"
    password: SecretStr | None = None
    key_path: Path | None = None
    host_key_policy: HostKeyPolicy = "reject"
    known_hosts_path: Path | None = None

    def __post_init__(self) -> None:
        check_host_name(self.host)

    def __repr__(self) -> str:  # never show the password, even masked, in a traceback
        return f"SshTarget({self.user}@{self.host}:{self.port}, policy={self.host_key_policy})"


class _SetupFailure(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SshExecutor:
    def __init__(self, target: SshTarget, max_idle: int = 4) -> None:
        self._target = target
        self._idle: list[paramiko.SSHClient] = []
        self._max_idle = max_idle
        self._lock = threading.Lock()
        self.connections_opened = 0
        self._first_seen = paramiko.HostKeys()  # `auto`: the keys trusted on first use
        if target.host_key_policy == "auto":
            log.warning(
                "ssh_host_key_policy is 'auto': unknown host keys are trusted on first use; "
                "use 'reject' with a pinned known_hosts file in production",
                extra={"event": "ssh_insecure_policy", "host": target.host},
            )

    async def run(self, argv: tuple[str, ...], timeout_s: float) -> CommandResult:
        return await asyncio.to_thread(self._run_blocking, argv, timeout_s)

    async def read_file(self, path: str, limit: int, timeout_s: float) -> bytes | None:
        """Read a file on the node through SFTP on a pooled connection (no remote command).

        None when the file does not exist; a transport failure raises ConnectionError."""
        return await asyncio.to_thread(self._read_file_blocking, path, limit, timeout_s)

    async def close(self) -> None:
        with self._lock:
            clients, self._idle = self._idle, []
        for client in clients:
            client.close()

    # ---------------------------------------------------------------- worker thread

    def _run_blocking(self, argv: tuple[str, ...], timeout_s: float) -> CommandResult:
        started = time.monotonic()
        try:
            client = self._acquire()
        except _SetupFailure as exc:
            return CommandResult(
                None, setup_error=str(exc), setup_code=exc.code, duration_s=time.monotonic() - started
            )
        except (OSError, paramiko.SSHException, EOFError) as exc:
            return CommandResult(None, connection_error=_describe(exc), duration_s=time.monotonic() - started)
        seconds = max(1, round(timeout_s))
        command = shlex.join(["timeout", "-k", str(KILL_GRACE_S), str(seconds), *argv])
        try:
            result = self._exec(client, command, timeout_s + KILL_GRACE_S + 1)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            client.close()  # half-dead: never hand it out again
            timed_out = isinstance(exc, (socket.timeout, TimeoutError))
            return CommandResult(
                None, timed_out=timed_out, connection_error=None if timed_out else _describe(exc),
                duration_s=time.monotonic() - started,
            )  # fmt: skip
        self._release(client)
        return CommandResult(
            exit_code=result[0], stdout=result[1], stderr=result[2], duration_s=time.monotonic() - started
        )

    def _read_file_blocking(self, path: str, limit: int, timeout_s: float) -> bytes | None:
        try:
            client = self._acquire()
        except _SetupFailure as exc:
            raise PermissionError(str(exc)) from None
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise ConnectionError(_describe(exc)) from None
        try:
            sftp = client.open_sftp()
            try:
                channel = sftp.get_channel()
                if channel is not None:
                    channel.settimeout(timeout_s)
                with sftp.open(path, "rb") as remote:
                    data: bytes = remote.read(limit)
            finally:
                sftp.close()
        except FileNotFoundError:
            self._release(client)
            return None
        except PermissionError:
            self._release(client)
            raise
        except (OSError, paramiko.SSHException, EOFError) as exc:
            client.close()  # half-dead: never hand it out again
            raise ConnectionError(_describe(exc)) from None
        self._release(client)
        return data

    @staticmethod
    def _exec(client: paramiko.SSHClient, command: str, timeout_s: float) -> tuple[int, str, str]:
        stdin, stdout, stderr = client.exec_command(command, timeout=timeout_s)
        stdin.close()
        out = stdout.read(_MAX_OUTPUT).decode(errors="replace")
        err = stderr.read(_MAX_OUTPUT).decode(errors="replace")
        return stdout.channel.recv_exit_status(), out, err

    def _acquire(self) -> paramiko.SSHClient:
        while True:
            with self._lock:
                client = self._idle.pop() if self._idle else None
            if client is None:
                return self._connect()
            if _alive(client):
                return client
            client.close()
            log.info(
                "replacing a dead SSH connection", extra={"event": "ssh_reconnect", "host": self._target.host}
            )

    def _release(self, client: paramiko.SSHClient) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(client)
                return
        client.close()

    def _connect(self) -> paramiko.SSHClient:
        target = self._target
        client = paramiko.SSHClient()
        try:
            _load_host_keys(client, target)
            with self._lock:
                _add_keys(client.get_host_keys(), self._first_seen)
            client.connect(
                target.host, port=target.port, username=target.user,
                password=target.password.get_secret_value() if target.password else None,
                key_filename=str(target.key_path) if target.key_path else None,
                timeout=CONNECT_TIMEOUT_S, banner_timeout=CONNECT_TIMEOUT_S, auth_timeout=CONNECT_TIMEOUT_S,
                allow_agent=False, look_for_keys=False,
            )  # fmt: skip
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise _SetupFailure(
                "host-key-mismatch",
                f"host key of {target.host}:{target.port} does not match known_hosts "
                f"(got {exc.key.get_name()} {exc.key.fingerprint}); refusing to connect: "
                "if the node was reinstalled, update known_hosts, otherwise suspect a man in the middle",
            ) from None
        except paramiko.AuthenticationException:
            client.close()
            raise _SetupFailure(
                "ssh-auth-failed", f"SSH authentication as {target.user} on {target.host} failed"
            ) from None
        except paramiko.SSHException as exc:
            client.close()
            if "not found in known_hosts" in str(exc):
                raise _SetupFailure(
                    "host-key-unknown",
                    f"{target.host}:{target.port} is not in known_hosts; add its key "
                    "(ssh-keyscan, checked out of band) or set ssh_known_hosts_path",
                ) from None
            raise
        except BaseException:
            client.close()
            raise
        self.connections_opened += 1
        if target.host_key_policy == "auto":
            self._keep_first_key(client)
        return client

    def _keep_first_key(self, client: paramiko.SSHClient) -> None:
        """Remember the key this connection was made with: a later connection to the
        same host is checked against it instead of trusting whatever it is shown."""
        transport = client.get_transport()
        if transport is None:
            return
        key = transport.get_remote_server_key()
        entry = self._target.host if self._target.port == 22 else f"[{self._target.host}]:{self._target.port}"
        with self._lock:
            if self._first_seen.lookup(entry) is None:
                self._first_seen.add(entry, key.get_name(), key)


def _load_host_keys(client: paramiko.SSHClient, target: SshTarget) -> None:
    if target.known_hosts_path is not None:
        if not target.known_hosts_path.is_file():
            raise _SetupFailure(
                "known-hosts-missing", f"known_hosts file {target.known_hosts_path} does not exist"
            )
        client.load_host_keys(str(target.known_hosts_path))
    else:
        client.load_system_host_keys()  # ~/.ssh/known_hosts
    if target.host_key_policy == "system" and SYSTEM_KNOWN_HOSTS.is_file():
        client.load_system_host_keys(str(SYSTEM_KNOWN_HOSTS))
    policy: paramiko.MissingHostKeyPolicy = (
        paramiko.AutoAddPolicy() if target.host_key_policy == "auto" else paramiko.RejectPolicy()
    )
    client.set_missing_host_key_policy(policy)


def _add_keys(into: paramiko.HostKeys, keys: paramiko.HostKeys) -> None:
    for host in list(keys):
        for key_type, key in keys[host].items():
            into.add(host, key_type, key)


def _alive(client: paramiko.SSHClient) -> bool:
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        return False
    try:
        transport.send_ignore()
    except (OSError, paramiko.SSHException, EOFError):
        return False
    return True


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
