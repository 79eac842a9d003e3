"""Pick and build the metric source: files when the cgroup tree is readable, else pvesh;
the Proxmox API only when asked for (`COLLECTOR.source: api`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from services.collector.sources.base import MetricSource, SourceError, SourceLabel
from services.collector.sources.cgroup import CGROUP_LXC, CgroupSource
from services.collector.sources.pvesh import PveshSource
from shared.config import ProxmoxApiSettings

SourceSetting = Literal["auto", "cgroup", "pvesh", "sim", "api"]


def detect_source(
    setting: SourceSetting, root: Path, which: Callable[[str], str | None] = shutil.which
) -> SourceLabel:
    if setting != "auto":
        return setting
    lxc = root / CGROUP_LXC
    if lxc.is_dir() and os.access(lxc, os.R_OK | os.X_OK):
        return "cgroup"
    if which("pvesh"):
        return "pvesh"
    raise SourceError(
        f"no metric source found: {lxc} is not a readable directory and pvesh is not on PATH; "
        "set COLLECTOR.source or --source (cgroup, pvesh or sim) and --root"
    )


def build_source(
    label: SourceLabel, root: Path, node: str, api: ProxmoxApiSettings | None = None
) -> MetricSource:
    if label == "pvesh":
        return PveshSource(node, root)
    if label == "api":
        from services.collector.sources.api import ApiSource
        from shared.proxmox_api import ProxmoxApi, endpoint_from_settings

        try:
            endpoint = endpoint_from_settings(api or ProxmoxApiSettings())
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        return ApiSource(node, ProxmoxApi(endpoint), timeout_s=(api or ProxmoxApiSettings()).timeout)
    return CgroupSource(root, label=label)
