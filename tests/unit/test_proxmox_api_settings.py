"""Choosing the executor and resolving the API token: from the original's keys, a file or the environment."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from services.actuator.executors.api import ApiExecutor
from services.actuator.executors.local import LocalExecutor
from services.actuator.wiring import StartupError, build_executor, executor_kind
from shared.config import API_TOKEN_ENV, parse_config
from shared.proxmox_api import endpoint_from_settings

API = {"user": "autoscale@pve", "token_name": "actuator", "fingerprint": "AB" * 32}


@pytest.mark.parametrize(
    ("document", "kind"),
    [
        ({}, "local"),
        ({"DEFAULT": {"use_remote_proxmox": True, "proxmox_host": "pve1"}}, "ssh"),
        ({"DEFAULT": {"backend": "api"}}, "api"),  # the original's dead key now means something
        ({"DEFAULT": {"backend": "api"}, "ACTUATOR": {"executor": "local"}}, "local"),
    ],
    ids=["default", "use_remote_proxmox", "backend api", "explicit wins"],
)
def test_the_executor_follows_actuator_executor_then_the_originals_keys(document: Any, kind: str) -> None:
    assert executor_kind(parse_config(document, env={})) == kind


def test_the_token_secret_comes_from_the_environment_and_never_shows(
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = {"DEFAULT": {"proxmox_api": API}, "ACTUATOR": {"executor": "api"}}
    config = parse_config(document, env={API_TOKEN_ENV: "9d0c5e9a-secret"})
    caplog.set_level(logging.DEBUG)
    executor = build_executor(config, "pve1")
    assert isinstance(executor, ApiExecutor)
    endpoint = endpoint_from_settings(config.defaults.proxmox_api)
    assert endpoint.token_id == "autoscale@pve!actuator"
    assert endpoint.secret.get_secret_value() == "9d0c5e9a-secret"
    assert "9d0c5e9a" not in repr(endpoint) + repr(config) + caplog.text


def test_the_token_secret_can_be_read_from_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("from-file\n")
    config = parse_config({"DEFAULT": {"proxmox_api": {**API, "token_value_file": str(secret_file)}}}, env={})
    assert endpoint_from_settings(config.defaults.proxmox_api).secret.get_secret_value() == "from-file"


@pytest.mark.parametrize(
    ("api", "message"),
    [
        ({"fingerprint": "AB" * 32}, "proxmox_api.user and proxmox_api.token_name"),
        (API, "no API token secret"),
        (
            {**API, "token_value": "s", "fingerprint": None, "ca_file": "/nonexistent/ca.pem"},
            "ca_file /nonexistent/ca.pem does not exist",
        ),
    ],
    ids=["no token id", "no secret", "missing CA file"],
)
def test_an_incomplete_api_setup_stops_the_actuator_with_what_to_fix(api: Any, message: str) -> None:
    config = parse_config({"DEFAULT": {"proxmox_api": api}, "ACTUATOR": {"executor": "api"}}, env={})
    with pytest.raises(StartupError, match=message):
        build_executor(config, "pve1")


def test_verify_ssl_false_is_insecure_and_warned_about_at_every_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = {"DEFAULT": {"proxmox_api": {**API, "verify_ssl": False}}, "ACTUATOR": {"executor": "api"}}
    config = parse_config(document, env={API_TOKEN_ENV: "s"})
    for _ in range(2):
        build_executor(config, "pve1")
    warnings = [r for r in caplog.records if getattr(r, "event", "") == "api_insecure_tls"]
    assert len(warnings) == 2 and all(r.levelno == logging.WARNING for r in warnings)
    assert endpoint_from_settings(config.defaults.proxmox_api).insecure


def test_a_malformed_fingerprint_is_a_config_problem() -> None:
    from shared.config import ConfigError

    with pytest.raises(ConfigError, match="fingerprint"):
        parse_config({"DEFAULT": {"proxmox_api": {**API, "fingerprint": "12:34"}}}, env={})


def test_local_stays_the_default_executor() -> None:
    assert isinstance(build_executor(parse_config({}, env={}), "pve1"), LocalExecutor)
