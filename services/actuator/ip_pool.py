"""The static IP of a new clone, from the group's `static_ip_range`. Pure.

An address is free only if no member has it in a `net<N>` line of its config (read from
every node's conf dir) and no reservation holds it (`ips.<group>.<a-b-c-d>` in the
groups bucket, written with `create` before the clone is made, so two actuators never
take the same one). Entries are addresses with an optional `/prefix`; a bare address
gets /24, as in the original (its issue #73).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_PREFIX = 24


class PoolError(ValueError):
    pass


@dataclass(frozen=True)
class PoolAddress:
    interface: ipaddress.IPv4Interface

    @property
    def address(self) -> ipaddress.IPv4Address:
        return self.interface.ip

    @property
    def cidr(self) -> str:
        """As net0's `ip=` wants it: `10.0.0.5/24`."""
        return self.interface.with_prefixlen

    @property
    def key_token(self) -> str:
        """A KV key token: `10-0-0-5` (dots separate key tokens)."""
        return str(self.address).replace(".", "-")


def parse_pool(entries: Iterable[str]) -> tuple[PoolAddress, ...]:
    """The pool in its configured order; a bad entry is an error that names it."""
    pool: list[PoolAddress] = []
    seen: set[ipaddress.IPv4Address] = set()
    for entry in entries:
        text = entry.strip()
        try:
            interface = ipaddress.IPv4Interface(text if "/" in text else f"{text}/{DEFAULT_PREFIX}")
        except ValueError:
            raise PoolError(f"static_ip_range entry {entry[:50]!r} is not an IPv4 address[/prefix]") from None
        if interface.ip in seen:
            continue
        seen.add(interface.ip)
        pool.append(PoolAddress(interface))
    return tuple(pool)


def pick(
    pool: tuple[PoolAddress, ...],
    in_use: Iterable[ipaddress.IPv4Address],
    reserved: Iterable[ipaddress.IPv4Address],
    skip: Iterable[ipaddress.IPv4Address] = (),
) -> PoolAddress | None:
    """The first address of the pool nobody uses, reserves, or that a lost race ruled out."""
    taken = set(in_use) | set(reserved) | set(skip)
    for candidate in pool:
        if candidate.address not in taken:
            return candidate
    return None
