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

import asyncio
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from shared.config import AutoscaleConfig
from shared.embedded_broker import BrokerError, EmbeddedBroker, free_port, start_configured_broker
from shared.nats_settings import open_connection

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


@dataclass(frozen=True)
class ClusterMember:
    """Where one server of a test cluster sits: its name, its route port, every route port."""

    server_name: str
    route_port: int
    route_ports: tuple[int, ...]

    def block(self) -> str:
        routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in self.route_ports)
        listen = f"127.0.0.1:{self.route_port}"
        return f"\ncluster {{\n  name: autoscale\n  listen: {listen}\n  routes: [{routes}]\n}}\n"


def shipped_conf_for_test(
    text: str, *, port: int, monitor_port: int, store_dir: Path, member: ClusterMember | None = None
) -> str:
    """The shipped file with only the listen address, monitoring port and store changed;
    a cluster member also gets its own server_name and a `cluster` block (routes)."""
    replacements = [
        (r"(?m)^listen:.*$", f"listen: 127.0.0.1:{port}"),
        (r"(?m)^http:.*$", f"http: 127.0.0.1:{monitor_port}"),
        (r"(?m)^(\s*)store_dir:.*$", rf"\g<1>store_dir: {_quoted(store_dir)}"),
    ]
    if member is not None:
        replacements.append((r"(?m)^server_name:.*$", f"server_name: {member.server_name}"))
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text)
        if count != 1:
            raise AssertionError(f"{SHIPPED_CONF}: expected one line matching {pattern!r}, found {count}")
    return text + member.block() if member is not None else text


def distinct_free_ports(count: int, avoid: frozenset[int] = frozenset()) -> list[int]:
    """`count` free loopback ports, none twice and none in `avoid`."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in avoid and port not in ports:
            ports.append(port)
    return ports


def _quoted(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


class ShippedBroker:
    """nats-server running the shipped configuration on 127.0.0.1; `restart()` keeps the
    port and the store."""

    def __init__(
        self,
        workdir: Path,
        nodes: Iterable[str] = DEFAULT_NODES,
        *,
        dotenv: dict[str, str] | None = None,
        member: ClusterMember | None = None,
        avoid: frozenset[int] = frozenset(),
    ) -> None:
        """`dotenv` (with users.conf already in `workdir`) shares one set of users between
        the servers of a cluster; `member` makes this server one of them."""
        self.workdir = workdir
        self.store_dir = workdir / "store"
        self.nodes = tuple(nodes)
        self.member = member
        workdir.mkdir(parents=True, exist_ok=True)
        self.dotenv = dotenv if dotenv is not None else generate_env(self.nodes, workdir / "users.conf")
        self.conf = workdir / "nats-server.conf"
        self._server: EmbeddedBroker | None = None
        # A cluster member must start: its peers already know its route port. Else another
        # process on this busy machine may take a free port before the server does; pick
        # two new ones (never the same twice) and try again.
        attempts = 1 if member is not None else 3
        for attempt in range(attempts):
            self.port, self.monitor_port = distinct_free_ports(2, avoid)
            self.conf.write_text(
                shipped_conf_for_test(
                    SHIPPED_CONF.read_text(), port=self.port, monitor_port=self.monitor_port,
                    store_dir=self.store_dir, member=member,
                )
            )  # fmt: skip
            try:
                self.start()
                break
            except BrokerError:
                if attempt == attempts - 1:
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

    def kill(self) -> None:
        """SIGKILL, as a crash or a lost machine: no goodbye to clients or peers."""
        if self._server is not None and self._server.process.poll() is None:
            self._server.process.kill()
            self._server.process.wait(10)
            self._server.stop()

    @property
    def port_pair(self) -> frozenset[int]:
        return frozenset((self.port, self.monitor_port))

    @property
    def pid(self) -> int:
        """The running server's process id (bench/fleet.py reads its CPU and memory in /proc)."""
        if self._server is None or self._server.process.poll() is not None:
            raise RuntimeError("the server is not running")
        return self._server.process.pid

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.process.poll() is None

    async def provision(self) -> None:
        """What `lxc-autoscale setup --node ...` does with the default settings, as setup."""
        await provision_as_setup([self.url], self.nodes)


async def provision_as_setup(
    urls: list[str], nodes: Iterable[str], replicas: int = 1, config: AutoscaleConfig | None = None
) -> None:
    """What `lxc-autoscale setup --node ...` does with `config` (default: the defaults)
    and `replicas`."""

    from cli.setup import actuator_consumers
    from shared.provisioning import StreamSettings, provision

    client = await open_connection(urls, connect_timeout=2, allow_reconnect=False)
    try:
        await provision(
            client.jetstream(),
            StreamSettings(replicas=replicas),
            consumers=actuator_consumers(config or AutoscaleConfig(), list(nodes)),
        )
    finally:
        await client.close()


class ShippedCluster:
    """`size` servers running the shipped configuration as one JetStream cluster on
    127.0.0.1: each its own server_name, store and ports, routes to all the others, and
    the same users (one users.conf and .env). `url_for` lists every server, as a
    deployment's NATS_URL does; `server(name)` is one member (kill, start, restart)."""

    def __init__(self, workdir: Path, nodes: Iterable[str] = DEFAULT_NODES, size: int = 3) -> None:
        self.nodes = tuple(nodes)
        workdir.mkdir(parents=True, exist_ok=True)
        users = workdir / "users.conf"
        self.dotenv = generate_env(self.nodes, users)
        self.servers: list[ShippedBroker] = []
        for attempt in range(3):  # a route port taken by someone else: all new ports
            route_ports = tuple(distinct_free_ports(size))
            try:
                for index, route_port in enumerate(route_ports, start=1):
                    directory = workdir / f"attempt{attempt}" / f"nats-{index}"
                    directory.mkdir(parents=True)
                    shutil.copy(users, directory / "users.conf")
                    taken = frozenset(route_ports).union(*(s.port_pair for s in self.servers))
                    member = ClusterMember(f"nats-{index}", route_port, route_ports)
                    self.servers.append(
                        ShippedBroker(directory, self.nodes, dotenv=self.dotenv, member=member, avoid=taken)
                    )
                return
            except BrokerError:
                self.stop()
                self.servers = []
                if attempt == 2:
                    raise

    def server(self, name: str) -> ShippedBroker:
        [found] = [s for s in self.servers if s.member is not None and s.member.server_name == name]
        return found

    def urls_for(self, user: str, node: str | None = None) -> list[str]:
        return [server.url_for(user, node) for server in self.servers]

    def url_for(self, user: str, node: str | None = None) -> str:
        """Every server's URL, comma separated (NATS.url, NATS_URL, --nats-url)."""
        return ",".join(self.urls_for(user, node))

    @property
    def url(self) -> str:
        return self.url_for("setup")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    async def wait_for_jetstream(self, timeout_s: float = 30.0) -> None:
        """Until the servers have elected a JetStream meta leader and answer its API."""

        client = await open_connection(self.urls_for("setup"), connect_timeout=2, max_reconnect_attempts=-1)
        try:
            deadline = asyncio.get_running_loop().time() + timeout_s
            while True:
                try:
                    await client.jetstream(timeout=2).account_info()
                    return
                except Exception:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.2)
        finally:
            await client.close()

    async def provision(self, replicas: int, config: AutoscaleConfig | None = None) -> None:
        await self.wait_for_jetstream()
        await provision_as_setup(self.urls_for("setup"), self.nodes, replicas, config)
