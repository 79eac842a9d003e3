"""The `shipped_broker` fixture runs the deployed NATS configuration, changed only in
ports and paths, and survives a restart with its streams."""

from __future__ import annotations

import asyncio
import contextlib
import difflib

import nats
import pytest

from shared import subjects
from shared.nats_settings import open_connection
from tests.secure_broker import SHIPPED_CONF, ShippedBroker

pytestmark = pytest.mark.integration


def test_only_the_listen_address_monitoring_port_and_store_differ(shipped_broker: ShippedBroker) -> None:
    shipped = SHIPPED_CONF.read_text().splitlines()
    running = shipped_broker.conf.read_text().splitlines()
    changed = [
        line[1:].strip()
        for line in difflib.unified_diff(shipped, running, lineterm="", n=0)
        if line.startswith("+") and not line.startswith("+++")
    ]
    assert changed == [
        f"listen: 127.0.0.1:{shipped_broker.port}",
        f"http: 127.0.0.1:{shipped_broker.monitor_port}",
        f'store_dir: "{shipped_broker.store_dir}"',
    ]


async def test_setup_provisioned_and_a_restart_keeps_port_and_streams(shipped_broker: ShippedBroker) -> None:
    client = await open_connection(shipped_broker.url, connect_timeout=2, max_reconnect_attempts=-1,
                                reconnect_time_wait=0.1)  # fmt: skip
    try:
        js = client.jetstream(timeout=2)
        await js.publish(subjects.events_subject("pve1", 101), b"kept")
        shipped_broker.restart()
        for _ in range(100):  # until the client has reconnected
            with contextlib.suppress(nats.errors.Error):
                info = await js.stream_info(subjects.EVENTS_STREAM)
                break
            await asyncio.sleep(0.05)
        assert info.state.messages == 1
        assert shipped_broker.url.startswith("nats://admin:p")
        assert shipped_broker.url.endswith(f"@127.0.0.1:{shipped_broker.port}")
    finally:
        await client.close()


def test_per_node_users_need_a_known_node(shipped_broker: ShippedBroker) -> None:
    with pytest.raises(ValueError, match="per node"):
        shipped_broker.url_for("collector")
    with pytest.raises(ValueError, match="no credentials"):
        shipped_broker.url_for("actuator", "pve9")
    with pytest.raises(ValueError, match="unknown user"):
        shipped_broker.url_for("root")
    assert shipped_broker.url_for("setup") == shipped_broker.url
