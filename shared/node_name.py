"""Which node a service speaks for: the configured name, else this host's name.

The one place the default is worked out (collector, actuator and rollback use it).
"""

from __future__ import annotations

import socket
from pathlib import Path

from shared.validation import check_node_name


def node_name(configured: str | None, root: Path = Path("/")) -> str:
    """`configured` (a flag or the config file's `node`, already merged by `resolve`),
    else `<root>/etc/hostname`, else the socket host name.

    Proxmox names a node after the short host name, so a domain part is dropped.
    Raises ValueError with the reason when the name is not a valid node name.
    """
    if configured:
        return check_node_name(configured)
    try:
        text = (root / "etc/hostname").read_text(errors="replace").strip()
    except OSError:
        text = ""
    name = text.split()[0] if text else socket.gethostname()
    return check_node_name(name.split(".")[0])
