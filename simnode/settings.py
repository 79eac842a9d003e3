"""Node-wide simulation knobs (simulation only): `<root>/var/lib/simnode/node.json`.

- `pve_version` (7 or 8, default 8): how a failed hotplug of `pct set` behaves.
  PVE 7 (pve-container < 5.2.2) writes the config with the failed key left under
  `[pve:pending]` and then fails; PVE 8 (>= 5.2.2) fails before writing anything.
- `pvestatd_period_s` (default 10, pvestatd's `$updatetime`): how often the simulated
  pvestatd refreshes the status pvesh reports and rebalances cpusets.
- `clone_s` (default 0): how long `pct clone`'s disk copy takes; the source keeps
  `lock: disk` and the new CT `lock: create` all that time, as on a real node.
- `boot_s` (default 0): how long a started container boots before its service serves
  load (the workload driver gives it none until then).

Read lazily with the stdlib only: `pct` imports this module on every spawn.
"""

from __future__ import annotations

import os

from simnode.atomic import write_atomic

PVE_VERSIONS = (7, 8)
DEFAULT_PVE_VERSION = 8
DEFAULT_PVESTATD_PERIOD_S = 10.0


def _path(root: str) -> str:
    return os.path.join(root, "var", "lib", "simnode", "node.json")  # beside faults.json


def _load(root: str) -> dict[str, float]:
    import json

    try:
        with open(_path(root), encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def pve_version(root: str | os.PathLike[str]) -> int:
    version = int(_load(os.fspath(root)).get("pve_version", DEFAULT_PVE_VERSION))
    return version if version in PVE_VERSIONS else DEFAULT_PVE_VERSION


def pvestatd_period_s(root: str | os.PathLike[str]) -> float:
    period = float(_load(os.fspath(root)).get("pvestatd_period_s", DEFAULT_PVESTATD_PERIOD_S))
    return period if period > 0 else DEFAULT_PVESTATD_PERIOD_S


def clone_s(root: str | os.PathLike[str]) -> float:
    return max(float(_load(os.fspath(root)).get("clone_s", 0.0)), 0.0)


def boot_s(root: str | os.PathLike[str]) -> float:
    return max(float(_load(os.fspath(root)).get("boot_s", 0.0)), 0.0)


def configure(
    root: str | os.PathLike[str],
    *,
    pve_version: int | None = None,
    pvestatd_period_s: float | None = None,
    clone_s: float | None = None,
    boot_s: float | None = None,
) -> None:
    """Set some knobs; the others keep their value."""
    import json

    root_s = os.fspath(root)
    data = _load(root_s)
    if pve_version is not None:
        if pve_version not in PVE_VERSIONS:
            raise ValueError(f"pve_version must be one of {PVE_VERSIONS}, not {pve_version}")
        data["pve_version"] = pve_version
    if pvestatd_period_s is not None:
        if not pvestatd_period_s > 0:
            raise ValueError("pvestatd_period_s must be > 0")
        data["pvestatd_period_s"] = pvestatd_period_s
    for name, seconds in (("clone_s", clone_s), ("boot_s", boot_s)):
        if seconds is not None:
            if not 0 <= seconds <= 3600:
                raise ValueError(f"{name} must be from 0 to 3600 seconds")
            data[name] = seconds
    os.makedirs(os.path.dirname(_path(root_s)), exist_ok=True)
    write_atomic(_path(root_s), json.dumps(data, sort_keys=True) + "\n")
