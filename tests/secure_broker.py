"""The shipped NATS configuration, run for a test: `shipped_broker` (tests/conftest.py).

deploy/nats/nats-server.conf is copied with only the listen address and port, the
monitoring address and port and the JetStream store directory changed; users,
permissions and limits are as deployed: users.conf beside it is written by the real
scripts/gen-env.sh for the test's nodes, whose printed .env gives the passwords, which
reach the server only through its environment. Before the test runs, streams,
consumers and buckets (and each node's actuator consumer) are provisioned as the setup
user, as `lxc-autoscale setup` does in a deployment.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable
from pathlib import Path

from shared.embedded_broker import BrokerError, EmbeddedBroker, free_port, start_configured_broker

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONF = REPO / "deploy" / "nats" / "nats-server.conf"
ROLES = REPO / "deploy" / "nats" / "users"
GEN_ENV = REPO / "scripts" / "gen-env.sh"

# Users of the shipped files: one per role file (the file name is the user name), and
# `<role>-<node>` for each per-node role file. `setup` is the name tests use for the
# provisioning user, which the files call `admin`.
USERS = tuple(sorted(path.stem for path in ROLES.glob("*.conf")))
PER_NODE_USERS = tuple(sorted(path.stem for path in (ROLES / "per-node").glob("*.conf")))
ALIASES = {"setup": "admin"}
DEFAULT_NODES = ("pve1", "pve2")


def password_variable(user: str, node: str | None = None) -> str:
    """The variable holding a user's password, as scripts/gen-env.sh names it."""
    middle = user if node is None else f"{user}_{node.replace('-', '_')}"
    return f"NATS_{middle.upper()}_PASSWORD"


def generate_env(nodes: Iterable[str], users_file: Path, *options: str) -> dict[str, str]:
    """Run scripts/gen-env.sh: write `users_file`, return the .env it prints."""
    done = subprocess.run(
        ["bash", str(GEN_ENV), "--users-file", str(users_file), *options, *nodes],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if line and not line.startswith("#"))


def shipped_conf_for_test(text: str, *, port: int, monitor_port: int, store_dir: Path) -> str:
    """The shipped file with only the listen address, monitoring port and store changed."""
    replacements = (
        (r"(?m)^listen:.*$", f"listen: 127.0.0.1:{port}"),
        (r"(?m)^http:.*$", f"http: 127.0.0.1:{monitor_port}"),
        (r"(?m)^(\s*)store_dir:.*$", rf"\g<1>store_dir: {_quoted(store_dir)}"),
    )
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text)
        if count != 1:
            raise AssertionError(f"{SHIPPED_CONF}: expected one line matching {pattern!r}, found {count}")
    return text


def _quoted(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


class ShippedBroker:
    """nats-server running the shipped configuration on 127.0.0.1; `restart()` keeps the
    port and the store."""

    def __init__(self, workdir: Path, nodes: Iterable[str] = DEFAULT_NODES) -> None:
        self.workdir = workdir
        self.store_dir = workdir / "store"
        self.nodes = tuple(nodes)
        workdir.mkdir(parents=True, exist_ok=True)
        self.dotenv = generate_env(self.nodes, workdir / "users.conf")
        self.conf = workdir / "nats-server.conf"
        self._server: EmbeddedBroker | None = None
        for attempt in range(3):
            # Another process on this busy machine may take a free port before the server
            # does; pick two new ones (never the same twice) and try again.
            self.port = free_port()
            self.monitor_port = free_port()
            while self.monitor_port == self.port:
                self.monitor_port = free_port()
            self.conf.write_text(
                shipped_conf_for_test(
                    SHIPPED_CONF.read_text(), port=self.port, monitor_port=self.monitor_port,
                    store_dir=self.store_dir,
                )
            )  # fmt: skip
            try:
                self.start()
                break
            except BrokerError:
                if attempt == 2:
                    raise

    @property
    def env(self) -> dict[str, str]:
        """The server's environment: only the password variables users.conf references."""
        return {
            name: value for name, value in self.dotenv.items() if re.fullmatch(r"NATS_\w+_PASSWORD", name)
        }

    def user_name(self, user: str, node: str | None = None) -> str:
        """The NATS user name a service of this role signs in as (on `node`)."""
        user = ALIASES.get(user, user)
        if user not in USERS + PER_NODE_USERS:
            raise ValueError(f"unknown user {user!r}; the shipped files have {USERS + PER_NODE_USERS}")
        if user in PER_NODE_USERS:
            if node is None:
                raise ValueError(f"{user} credentials are per node: pass node=")
            if node not in self.nodes:
                raise ValueError(f"node {node!r} has no credentials here; this broker has {self.nodes}")
            return f"{user}-{node}"
        return user

    def credentials(self, user: str, node: str | None = None) -> tuple[str, str]:
        name = self.user_name(user, node)
        role = ALIASES.get(user, user)
        return name, self.dotenv[password_variable(role, node if role in PER_NODE_USERS else None)]

    def url_for(self, user: str, node: str | None = None) -> str:
        name, password = self.credentials(user, node)
        return f"nats://{name}:{password}@127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.url_for("setup")

    @property
    def log_file(self) -> Path:
        return self.store_dir / "nats-server.log"

    def start(self) -> None:
        if self._server is not None and self._server.process.poll() is None:
            return
        self._server = start_configured_broker(
            self.conf, port=self.port, store_dir=self.store_dir, env=self.env
        )

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._server is not None:
            self._server.stop(timeout_s)

    def restart(self) -> None:
        self.stop()
        self.start()

    async def provision(self) -> None:
        """What `lxc-autoscale setup --node ...` does with the default settings, as setup."""
        import nats

        from cli.setup import actuator_consumers
        from shared.config import AutoscaleConfig
        from shared.provisioning import provision

        client = await nats.connect(self.url, connect_timeout=2, allow_reconnect=False)
        try:
            await provision(
                client.jetstream(), consumers=actuator_consumers(AutoscaleConfig(), list(self.nodes))
            )
        finally:
            await client.close()
