"""Which node this collector speaks for: flag, then config, then the host name."""

from __future__ import annotations

import socket
from pathlib import Path

from shared.validation import check_node_name


def resolve_node_name(flag: str | None, configured: str | None, root: Path) -> str:
    """The first of --node, COLLECTOR.node, `<root>/etc/hostname`, the socket host name.

    Proxmox names a node after the short host name, so a domain part is dropped.
    Raises ValueError with the reason when the name is not a valid node name.
    """
    for explicit in (flag, configured):
        if explicit:
            return check_node_name(explicit)
    try:
        text = (root / "etc/hostname").read_text(errors="replace").strip()
    except OSError:
        text = ""
    name = text.split()[0] if text else socket.gethostname()
    return check_node_name(name.split(".")[0])
