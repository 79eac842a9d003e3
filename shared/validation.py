"""Validated value types shared by every service.

Values that end up in NATS subjects or in `pct` arguments are checked here once,
so a bad vmid or node name is refused at the edge with a clear message.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

VMID_MIN = 100
VMID_MAX = 999_999_999
# Proxmox node names are DNS labels; keep them subject-safe (no dots, no wildcards).
NODE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
# Host names for SSH targets: DNS names or IPv4/IPv6 literals, nothing a shell would interpret.
HOST_NAME_PATTERN = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]+\]?)$")
# Horizontal group names (the suffix of HORIZONTAL_SCALING_GROUP_<name>) go into KV keys
# and the Proxmox tag `autoscale-group-<name>`; Proxmox tags are lower-case-safe only.
GROUP_NAME_RE = r"^[a-z0-9](?:[a-z0-9_-]{0,38}[a-z0-9])?$"
GROUP_NAME_PATTERN = re.compile(GROUP_NAME_RE)
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_vmid(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"vmid must be an integer, got {type(value).__name__}")
    if not VMID_MIN <= value <= VMID_MAX:
        raise ValueError(f"vmid {value} is outside {VMID_MIN}..{VMID_MAX}")
    return value


def check_node_name(value: str) -> str:
    if not NODE_NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"node name {sanitize(value)!r} must be 1-63 letters, digits or '-' "
            "(no dots, spaces or wildcards)"
        )
    return value


def check_group_name(value: str) -> str:
    if not GROUP_NAME_PATTERN.fullmatch(value):
        raise ValueError(
            f"group name {sanitize(value)!r} must be 1-40 lower-case letters, digits, '-' or '_' "
            "(starting and ending with a letter or digit)"
        )
    return value


def check_host_name(value: str) -> str:
    if not HOST_NAME_PATTERN.fullmatch(value):
        raise ValueError(f"host name {sanitize(value)!r} is not a DNS name or IP address")
    return value


def sanitize(text: object, limit: int = 500) -> str:
    """Make outside text safe for one log line: no control characters, bounded length."""
    cleaned = _CONTROL_CHARS.sub("?", str(text))
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "…"


# Range checked by pydantic's core (no Python call per value: samples carry thousands).
Vmid = Annotated[int, Field(strict=True, ge=VMID_MIN, le=VMID_MAX)]
NodeName = Annotated[str, AfterValidator(check_node_name)]
GroupName = Annotated[str, Field(pattern=GROUP_NAME_RE, min_length=1, max_length=40)]
HostName = Annotated[str, AfterValidator(check_host_name)]
