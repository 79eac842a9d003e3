"""Where a client's replies arrive (its inbox prefix), and that every client of the project
opens its connection through shared/nats_settings.py, which sets it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.nats_settings import NatsSettings

REPO = Path(__file__).resolve().parents[2]
CLIENT_FOLDERS = ("services", "shared", "cli", "simnode", "tests", "deploy", "bench", "scripts")


@pytest.mark.parametrize(
    ("settings", "prefix"),
    [
        pytest.param({"user": "decider"}, "_INBOX.decider", id="NATS_USER"),
        pytest.param(
            {"url": "nats://collector-pve1:pw@10.0.0.5:4222"}, "_INBOX.collector-pve1", id="user-in-url"
        ),
        pytest.param(
            {"url": "nats://actuator-pve2:pw@a:4222,nats://actuator-pve2:pw@b:4222"},
            "_INBOX.actuator-pve2",
            id="every-server-of-a-cluster",
        ),
        pytest.param(
            {"url": "nats://other:pw@a:4222", "user": "console"}, "_INBOX.console", id="user-over-url"
        ),
        pytest.param({}, "_INBOX", id="no-user-nats-py-default"),
        pytest.param({"token": "t"}, "_INBOX", id="token"),
        pytest.param({"user": "decider", "inbox_prefix": "_INBOX_ops"}, "_INBOX_ops", id="set-explicitly"),
    ],
)
def test_a_client_gets_its_users_own_inbox_prefix(settings: dict[str, str], prefix: str) -> None:
    resolved = NatsSettings.model_validate(settings)
    assert resolved.reply_prefix == prefix
    assert resolved.connect_options()["inbox_prefix"] == prefix


def test_the_prefix_can_be_set_from_the_environment() -> None:
    settings = NatsSettings.from_env(None, {"NATS_USER": "nkey-user", "NATS_INBOX_PREFIX": "_INBOX.ops"})
    assert settings.reply_prefix == "_INBOX.ops"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param({"user": "ops.team"}, "set NATS_INBOX_PREFIX", id="dotted-user"),
        pytest.param({"url": "nats://a%20b:pw@host:4222"}, "set NATS_INBOX_PREFIX", id="space-in-url-user"),
        pytest.param({"inbox_prefix": "_INBOX.>"}, "without wildcards", id="wildcard-prefix"),
        pytest.param({"inbox_prefix": "_INBOX..x"}, "without wildcards", id="empty-token"),
    ],
)
def test_a_user_name_or_prefix_that_is_no_subject_is_refused_at_load(
    settings: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        NatsSettings.model_validate(settings)


def _raw_connects(tree: ast.AST) -> list[int]:
    """Lines calling nats.connect / nats.aio.client.Client.connect, or importing `connect` from nats."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nats"):
            lines += [node.lineno for alias in node.names if alias.name in {"connect", "NATS"}]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = node.func.value
            if node.func.attr == "connect" and isinstance(target, ast.Name) and target.id == "nats":
                lines.append(node.lineno)
    return lines


def test_every_client_connects_through_the_shared_helper() -> None:
    """A connection opened with nats.connect directly would use nats-py's `_INBOX`, which
    the shipped permissions refuse; shared.nats_settings.open_connection sets the prefix."""
    offending = [
        f"{path.relative_to(REPO)}:{line}"
        for folder in CLIENT_FOLDERS
        for path in sorted((REPO / folder).rglob("*.py"))
        if path != REPO / "shared" / "nats_settings.py"
        for line in _raw_connects(ast.parse(path.read_text()))
    ]
    assert offending == []
