"""The node lease (services/actuator/leadership.py) between two actuator connections, each
signed in as the node's actuator user of the shipped configuration. Each side has its own
clock, moved by hand the same amount: what matters is how long a lease went unrenewed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from services.actuator.leadership import Leadership, LeaseLost, lease_key
from services.actuator.records import LeaseRecord
from shared import subjects
from shared.clock import FakeClock
from shared.nats_settings import open_connection
from tests.secure_broker import ShippedBroker

pytestmark = [pytest.mark.integration, pytest.mark.shipped_nodes("pve1", "pve2")]
TTL_S = 9.0


class Side:
    def __init__(self, leadership: Leadership, clock: FakeClock) -> None:
        self.lease = leadership
        self.clock = clock


@pytest.fixture
async def clients(shipped_broker: ShippedBroker) -> AsyncIterator[list[Any]]:
    opened = [await open_connection(shipped_broker.url_for("actuator", "pve1")) for _ in range(2)]
    yield opened
    for client in opened:
        await client.close()


async def side(client: Any, name: str, node: str = "pve1") -> Side:
    clock = FakeClock()
    kv = await client.jetstream(timeout=1.0).key_value(subjects.ACTUATOR_BUCKET)  # a refusal times out
    leadership = Leadership(kv=kv, node=node, ttl_s=TTL_S, renew_every_s=TTL_S / 3, clock=clock, holder=name)
    return Side(leadership, clock)


def advance(seconds: float, *sides: Side) -> None:
    for each in sides:
        each.clock.advance(seconds)


async def holder(client: Any) -> str:
    kv = await client.jetstream().key_value(subjects.ACTUATOR_BUCKET)
    return LeaseRecord.model_validate_json((await kv.get(lease_key("pve1"))).value).holder


async def test_only_one_of_two_actuators_takes_a_free_lease(clients: list[Any]) -> None:
    a, b = await side(clients[0], "a"), await side(clients[1], "b")
    await a.lease.step()
    await b.lease.step()
    assert (a.lease.leading, b.lease.leading) == (True, False)
    assert await holder(clients[0]) == "a"
    with pytest.raises(LeaseLost):
        await b.lease.ensure(1.0)  # a standby may not change anything


async def test_a_holder_that_keeps_renewing_is_never_taken_over(clients: list[Any]) -> None:
    a, b = await side(clients[0], "a"), await side(clients[1], "b")
    await a.lease.step()
    for _ in range(10):  # 10 x ttl/3: more than three lease lifetimes
        await b.lease.step()
        advance(TTL_S / 3, a, b)
        await a.lease.step()
    await b.lease.step()
    assert (a.lease.leading, b.lease.leading) == (True, False)
    await a.lease.ensure(TTL_S - 1)


async def test_a_holder_cut_off_from_nats_is_fenced_before_a_standby_can_take_over(
    clients: list[Any],
) -> None:
    a, b = await side(clients[0], "a"), await side(clients[1], "b")
    await a.lease.step()
    await b.lease.step()  # b sees a's revision and starts timing it
    await clients[0].close()  # a can no longer renew
    advance(TTL_S - 0.5, a, b)
    await b.lease.step()
    assert not b.lease.leading  # not before the ttl has run out on b's own clock
    with pytest.raises(LeaseLost):
        await a.lease.ensure(1.0)  # a starts no step it could not finish within its lease…
    assert a.lease.leading  # …though the lease is still its own for a moment
    advance(1.0, a, b)
    assert not a.lease.leading  # over by a's own reckoning before b may take it
    await b.lease.step()
    assert b.lease.leading and await holder(clients[1]) == "b"


async def test_a_frozen_holder_finds_its_lease_taken_when_it_wakes_and_stands_by(
    clients: list[Any],
) -> None:
    a, b = await side(clients[0], "a"), await side(clients[1], "b")
    await a.lease.step()
    await b.lease.step()
    advance(TTL_S, a, b)  # a is frozen: it neither renews nor does anything else
    await b.lease.step()
    assert b.lease.leading
    with pytest.raises(LeaseLost):
        await a.lease.ensure(0.1)  # its renewal fails the compare-and-set
    await a.lease.step()
    assert (a.lease.leading, b.lease.leading) == (False, True)
    assert await holder(clients[0]) == "b"


async def test_a_holder_cut_off_briefly_keeps_its_lease_when_nobody_took_it(clients: list[Any]) -> None:
    a = await side(clients[0], "a")
    await a.lease.step()
    advance(TTL_S + 5, a)  # no renewal for longer than the ttl, but no standby either
    assert not a.lease.leading
    await a.lease.ensure(TTL_S - 1)  # the renewal with its revision still succeeds
    assert a.lease.leading


async def test_a_clean_stop_hands_the_lease_over_at_once(clients: list[Any]) -> None:
    a, b = await side(clients[0], "a"), await side(clients[1], "b")
    await a.lease.step()
    await b.lease.step()
    await a.lease.release()
    await b.lease.step()
    assert (a.lease.leading, b.lease.leading) == (False, True)


async def test_the_lease_of_another_node_is_out_of_reach(shipped_broker: ShippedBroker) -> None:
    """pve1's actuator user cannot take pve2's lease (writes are limited to `pve1.`)."""
    client = await open_connection(shipped_broker.url_for("actuator", "pve1"))
    try:
        other = await side(client, "intruder", node="pve2")
        await other.lease.step()
        assert not other.lease.leading
    finally:
        await client.close()
