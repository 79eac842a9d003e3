"""The shipped NATS configuration, run for a test: `shipped_broker` (tests/conftest.py).

deploy/nats/nats-server.conf is copied with only the listen address and port, the
monitoring address and port and the JetStream store directory changed; users,
permissions and limits are the file as deployed. Passwords are random per broker and
reach the server only through the environment variables the file references. Before
the test runs, streams, consumers and buckets are provisioned as the setup user, as
`lxc-autoscale setup` does in a deployment.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from shared.embedded_broker import EmbeddedBroker, free_port, start_configured_broker

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CONF = REPO / "deploy" / "nats" / "nats-server.conf"

# Service users of the shipped file; `setup` is the name tests use for the provisioning
# user, which the file calls `admin`.
USERS = ("admin", "collector", "decider", "actuator", "observer", "notifier")
ALIASES = {"setup": "admin"}
# Roles whose credentials are per node (`url_for(role, node)`); none yet in the shipped
# file: the node is checked but every node shares the role's user until they are split.
PER_NODE_USERS = ("collector", "actuator")
DEFAULT_NODES = ("pve1", "pve2")


def password_variable(user: str) -> str:
    return f"NATS_{user.upper()}_PASSWORD"


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
        self.port = free_port()
        self.monitor_port = free_port()
        self.passwords = {user: f"p{secrets.token_hex(16)}" for user in USERS}
        workdir.mkdir(parents=True, exist_ok=True)
        self.conf = workdir / "nats-server.conf"
        self.conf.write_text(
            shipped_conf_for_test(
                SHIPPED_CONF.read_text(), port=self.port, monitor_port=self.monitor_port,
                store_dir=self.store_dir,
            )
        )  # fmt: skip
        self._server: EmbeddedBroker | None = None
        self.start()

    @property
    def env(self) -> dict[str, str]:
        """The server's environment: only the password variables the file references."""
        return {password_variable(user): password for user, password in self.passwords.items()}

    def user_name(self, user: str, node: str | None = None) -> str:
        """The NATS user name a service of this role signs in as (on `node`)."""
        user = ALIASES.get(user, user)
        if user not in USERS:
            raise ValueError(f"unknown user {user!r}; the shipped file has {', '.join(USERS)}")
        if user in PER_NODE_USERS:
            if node is None:
                raise ValueError(f"{user} credentials are per node: pass node=")
            if node not in self.nodes:
                raise ValueError(f"node {node!r} has no credentials here; this broker has {self.nodes}")
        return user

    def credentials(self, user: str, node: str | None = None) -> tuple[str, str]:
        name = self.user_name(user, node)
        return name, self.passwords[ALIASES.get(user, user)]

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
        """What `lxc-autoscale setup` does, as the setup user."""
        import nats

        from shared.provisioning import provision

        client = await nats.connect(self.url, connect_timeout=2, allow_reconnect=False)
        try:
            await provision(client.jetstream())
        finally:
            await client.close()
