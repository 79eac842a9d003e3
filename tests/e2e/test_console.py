"""The console against the demo: real broker, real services, simulated node.

What an operator relies on: every container is listed with its size and usage; the
verdict and reason shown for a busy container are the ones the deciders act on; a
pause set through the API is the one the deciders follow and the console shows;
control without the right token is refused and changes nothing; names from the bus
come back escaped; `lxc-autoscale status` prints the same view.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.js.errors import KeyNotFoundError

from shared import subjects
from shared.embedded_broker import free_port
from shared.pauses import PauseEntry
from tests.console_demo import (
    HOSTILE_NAME,
    ROOT,
    SCENARIO,
    TOKEN,
    ConsoleDemo,
    nats_call,
    publish_hostile_sample,
    run_console_demo,
)

pytestmark = pytest.mark.e2e
DEMO_VMIDS = sorted(c["vmid"] for c in SCENARIO["containers"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleDemo]:
    yield from run_console_demo(tmp_path_factory.mktemp("console"))


def _row(demo: ConsoleDemo, vmid: int, node: str = "pve1") -> dict[str, Any]:
    result: dict[str, Any] = demo.get(f"/api/v1/containers/{node}/{vmid}")
    return result


def _kv_value(demo: ConsoleDemo, bucket: str, key: str) -> bytes | None:
    async def read(js: Any) -> bytes | None:
        kv = await js.key_value(bucket)
        try:
            return (await kv.get(key)).value  # type: ignore[no-any-return]
        except KeyNotFoundError:
            return None

    return nats_call(demo.broker.url, read)  # type: ignore[no-any-return]


def _intents_last_seq(demo: ConsoleDemo) -> int:
    async def read(js: Any) -> int:
        return (await js.stream_info(subjects.INTENTS_STREAM)).state.last_seq  # type: ignore[no-any-return]

    return nats_call(demo.broker.url, read)  # type: ignore[no-any-return]


def test_every_container_of_the_demo_is_listed_with_size_tier_and_usage(demo: ConsoleDemo) -> None:
    rows = demo.wait_for(
        "every demo container with both readings",
        lambda: (
            (r := demo.get("/api/v1/containers?node=pve1"))
            and all(row["usage"]["cpu_pct"] is not None for row in r)
            and r
        ),
    )
    assert [row["vmid"] for row in rows] == DEMO_VMIDS
    by_vmid = {row["vmid"]: row for row in rows}
    assert by_vmid[101]["tier"] == "web" and by_vmid[201]["tier"] == "db"
    assert by_vmid[102]["hostname"] == "web2"
    assert by_vmid[102]["size"] == {"cores": 2, "memory_mb": 2048}
    assert by_vmid[102]["thresholds"]["cpu_upper_threshold"] == 80
    nodes = demo.get("/api/v1/nodes")
    assert [n["node"] for n in nodes if n["node"] == "pve1"] == ["pve1"]
    assert nodes[0]["host"]["cores"] == SCENARIO["host_cores"]


def test_a_busy_container_shows_the_verdict_and_reason_the_deciders_act_on(demo: ConsoleDemo) -> None:
    # The console's poller has recorded every verdict since the demo started.
    def shown_and_acted_on() -> tuple[str, str] | None:
        events = demo.get("/api/v1/events?vmid=101&node=pve1&outcome=applied")
        acted = {e["reason"]["summary"] for e in events if e["origin"] == "decider" and e["reason"]}
        for vmid, verdict, reason in demo.seen:
            summary = reason.removeprefix("waiting for the actuator: ")
            if vmid == 101 and verdict in {"scale-up", "pending"} and summary in acted:
                return verdict, summary
        return None

    _verdict, reason = demo.wait_for("a scale-up of web1 shown before it was applied", shown_and_acted_on)
    assert reason.startswith("ct 101: cpu ") and "> 80%" in reason, reason
    health = demo.get("/api/v1/health")
    assert health["nodes"]["pve1"]["stale"] is False
    consumers = {c["consumer"]: c for c in health["consumers"]}
    assert {"deciders", "actuator-pve1"} <= set(consumers)
    assert all(isinstance(c["lag"], int) for c in consumers.values())


def test_a_pause_set_through_the_api_is_shown_and_stored_like_the_pause_command(demo: ConsoleDemo) -> None:
    body = {"node": "pve1", "vmid": 202, "mode": "all", "reason": "disk maintenance"}
    reply = demo.request("/api/v1/pause", body, token=TOKEN)
    assert reply.status == 200, reply.body
    stored = _kv_value(demo, subjects.POLICY_BUCKET, "pause.pve1.202")
    assert stored is not None
    assert PauseEntry.model_validate_json(stored) == PauseEntry(mode="all", reason="disk maintenance")
    row = demo.wait_for("the pause on 202", lambda: (r := _row(demo, 202))["pause"] and r)
    assert row["pause"] == {"scope": "container", "mode": "all", "until": None, "reason": "disk maintenance"}
    assert any(p["key"] == "pause.pve1.202" for p in demo.get("/api/v1/pauses"))

    reply = demo.request("/api/v1/resume", {"node": "pve1", "vmid": 202}, token=TOKEN)
    assert reply.json() == {"key": "pause.pve1.202", "resumed": True}
    assert _kv_value(demo, subjects.POLICY_BUCKET, "pause.pve1.202") is None
    demo.wait_for("the pause on 202 to go", lambda: _row(demo, 202)["pause"] is None)


@pytest.mark.parametrize(
    ("token", "scheme"),
    [(None, "Bearer"), ("wrong-token", "Bearer"), (TOKEN[:-1], "Bearer"), (TOKEN, "Basic"), ("", "Bearer")],
    ids=["missing", "wrong", "prefix-of-the-token", "wrong-scheme", "empty"],
)
def test_control_without_the_right_token_is_refused_and_changes_nothing(
    demo: ConsoleDemo, token: str | None, scheme: str
) -> None:
    intents_before = _intents_last_seq(demo)
    for path, body in (
        ("/api/v1/pause", {"node": "pve1", "vmid": 101, "mode": "all"}),
        ("/api/v1/pause", {}),
        ("/api/v1/rollback", {"node": "pve1", "vmid": 103}),
    ):
        reply = demo.request(path, body, token=token, scheme=scheme)
        assert reply.status == 401, (path, reply.body)
        assert reply.json() == {"error": "a valid bearer token is required"}
    assert _kv_value(demo, subjects.POLICY_BUCKET, "pause.pve1.101") is None
    assert _kv_value(demo, subjects.POLICY_BUCKET, "pause.all") is None
    assert _intents_last_seq(demo) == intents_before, "a refused rollback published an intent"


def test_bad_control_requests_get_a_clear_error(demo: ConsoleDemo) -> None:
    reply = demo.request("/api/v1/pause", {"vmid": 101}, token=TOKEN)
    assert reply.status == 400 and "one container (node and vmid)" in reply.json()["error"]
    reply = demo.request("/api/v1/pause", {"node": "pve1", "vmid": 101, "mode": "sideways"}, token=TOKEN)
    assert reply.status == 400 and "invalid pause" in reply.json()["error"]
    reply = demo.request("/api/v1/rollback", {"node": "pve1", "vmid": 102}, token=TOKEN)
    assert reply.status == 404 and "never changed it" in reply.json()["error"]
    assert demo.request("/api/v1/containers?vmid=abc").status == 400
    assert demo.request("/api/v1/events?since=yesterday").status == 400
    assert _kv_value(demo, subjects.POLICY_BUCKET, "pause.pve1.101") is None


def test_hostile_names_come_back_escaped(demo: ConsoleDemo) -> None:
    publish_hostile_sample(demo.broker.url)
    demo.wait_for("the hostile node", lambda: demo.get("/api/v1/containers?node=hostile"))
    reply = demo.request("/api/v1/containers?node=hostile")
    assert b"<img" not in reply.body and b"&amp;" not in reply.body
    assert b"\\u003cimg" in reply.body
    assert reply.json()[0]["hostname"] == HOSTILE_NAME  # escaped on the wire, exact once parsed
    assert reply.json()[0]["decision"]["verdict"] == "none"


def test_status_prints_the_same_view_as_a_table_as_json_and_for_one_container(
    demo: ConsoleDemo, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text((demo.output.parent / "demo" / "config.yaml").read_text())

    def status(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", "status", "--config", str(config),
             "--nats-url", demo.broker.url, "--log-format", "json", *args],
            capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    import json

    rows = json.loads(status("--json", "--node", "pve1"))
    assert [r["vmid"] for r in rows] == DEMO_VMIDS
    assert all(r["decision"]["reason"] for r in rows)

    table = status("--node", "pve1").splitlines()
    assert table[0].split()[:4] == ["NODE/VMID", "NAME", "TIER", "CPU"]
    assert [line.split()[0] for line in table[1:]] == [f"pve1/{v}" for v in DEMO_VMIDS]
    web2 = next(line for line in table if line.startswith("pve1/102"))
    assert "web2" in web2 and "2c/2048M" in web2

    demo.wait_for("web1 to be scaled", lambda: demo.get("/api/v1/events?vmid=101&outcome=applied"))
    described = status("--vmid", "101", "--node", "pve1")
    assert "Container:   pve1/101 (web1)" in described
    assert "Tier:        web" in described
    assert "Reason:" in described and "Events:" in described
    assert "applied" in described  # web1 was scaled up


def test_without_a_token_control_is_closed_and_the_api_says_so(demo: ConsoleDemo, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("DEFAULT: {}\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LXC_AUTOSCALE_CONSOLE_TOKEN"}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "console", "--config", str(config), "--nats-url", demo.broker.url,
         "--port", str(port), "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT,
    )  # fmt: skip
    try:
        second = ConsoleDemo(broker=demo.broker, url=f"http://127.0.0.1:{port}/", process=process,
                             output=demo.output)  # fmt: skip
        second.wait_for("the second console", lambda: _ready(second))
        assert second.get("/api/v1")["control"].startswith("disabled")
        reply = second.request("/api/v1/pause", {"node": "pve1", "vmid": 101}, token="anything")
        assert reply.status == 403 and "no token is configured" in reply.json()["error"]
        assert _kv_value(demo, subjects.POLICY_BUCKET, "pause.pve1.101") is None
        # A second replica shows the same containers: the console keeps no state of its own.
        assert [r["vmid"] for r in second.get("/api/v1/containers?node=pve1")] == DEMO_VMIDS
    finally:
        process.terminate()
        process.wait(10)


def _ready(console: ConsoleDemo) -> bool:
    try:
        return console.request("/readyz").status == 200
    except OSError:
        return False
