"""Storages of the cluster (`/etc/pve/storage.cfg`) and what their volumes can do.

Only what `pct snapshot` and `pct clone` ask of pve-storage: does a storage exist, is it
shared, does a volume have the `snapshot` / `clone` feature (each plugin's
`volume_has_feature`), and the name of a new volume (`find_free_diskname`).
Without a storage.cfg a node has the installer's default: `local` (dir) and
`local-lvm` (lvmthin). Stdlib only.
"""

from __future__ import annotations

import os
import re

from simnode import paths

DEFAULT_CFG = (
    "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\n"
    "lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n"
)
# Plugins whose storage is the same from every node (their `shared` is implied).
_SHARED_TYPES = frozenset({"nfs", "cifs", "cephfs", "rbd", "glusterfs", "iscsi", "iscsidirect", "pbs"})
# volume_has_feature: feature -> the volume states (base, current, snap) that have it.
_FEATURES: dict[str, dict[str, frozenset[str]]] = {
    "lvmthin": {"snapshot": frozenset({"current"}), "clone": frozenset({"base", "snap"})},
    "zfspool": {"snapshot": frozenset({"current", "snap"}), "clone": frozenset({"base"})},
    "rbd": {"snapshot": frozenset({"current", "snap"}), "clone": frozenset({"base", "snap"})},
}
_FILE_TYPES = frozenset({"dir", "nfs", "cifs", "cephfs", "glusterfs"})  # images are files
_HEADER_RE = re.compile(r"^(\S+):\s*(\S+)\s*$")
_VOLNAME_RE = re.compile(r"^(?:(base-\d+-disk-\d+)/)?((?:vm|base|subvol|basevol)-(\d+)-disk-(\d+))$")


class StorageError(Exception):
    """pve-storage's `die` text."""


def config(root: str) -> dict[str, dict[str, str]]:
    """storage id -> {"type": ..., other properties} as `PVE::Storage::config()`."""
    try:
        with open(paths.cluster_file(root, "storage.cfg"), encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        text = DEFAULT_CFG
    out: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        header = _HEADER_RE.match(line)
        if header and not line[0].isspace():
            current = out[header.group(2)] = {"type": header.group(1)}
        elif current is not None:
            key, _, value = line.strip().partition(" ")
            current[key] = value.strip()
    return out


def check_enabled(root: str, storage_id: str) -> dict[str, str]:
    """`storage_check_enabled`: the storage's config, or pve-storage's error."""
    scfg = config(root).get(storage_id)
    if scfg is None:
        raise StorageError(f"storage '{storage_id}' does not exist")
    if scfg.get("disable") == "1":
        raise StorageError(f"storage '{storage_id}' is disabled")
    return scfg


def is_shared(scfg: dict[str, str]) -> bool:
    return scfg.get("shared") == "1" or scfg["type"] in _SHARED_TYPES


def split_volid(volid: str) -> tuple[str, str]:
    """`parse_volume_id`: `local-lvm:vm-101-disk-0` -> (`local-lvm`, `vm-101-disk-0`)."""
    storage_id, sep, volname = volid.partition(":")
    if not sep or not volname:
        raise StorageError(f"unable to parse volume ID '{volid}'")
    return storage_id, volname


def has_feature(root: str, feature: str, volid: str, snapname: str | None) -> bool:
    """The plugin's `volume_has_feature` for a container volume (raw or subvol)."""
    storage_id, volname = split_volid(volid)
    scfg = check_enabled(root, storage_id)
    is_base = volname.split("/")[-1].startswith("base")
    state = "snap" if snapname else "base" if is_base else "current"
    return state in _FEATURES.get(scfg["type"], {}).get(feature, frozenset())


def free_volname(root: str, storage_id: str, vmid: int, used: set[str]) -> str:
    """`find_free_diskname`: the first `vm-<vmid>-disk-<n>` not in use on that storage."""
    kind = check_enabled(root, storage_id)["type"]
    if kind in _FILE_TYPES:
        pattern = f"{storage_id}:{vmid}/vm-{vmid}-disk-{{n}}.raw"  # a raw image file
    else:
        prefix = "subvol" if kind == "zfspool" else "vm"
        pattern = f"{storage_id}:{prefix}-{vmid}-disk-{{n}}"
    n = 0
    while pattern.format(n=n) in used:
        n += 1
    return pattern.format(n=n)


def volume_of(mountpoint: str) -> str:
    """The volume id of a `rootfs`/`mpN` value (`local-lvm:vm-101-disk-0,size=8G`)."""
    first = mountpoint.split(",")[0]
    return first[len("volume=") :] if first.startswith("volume=") else first


def is_volume(volid: str) -> bool:
    """A storage volume (`storage:name`), not a bind mount (`/path`) or a device."""
    return ":" in volid and not volid.startswith("/")


def owner_vmid(volid: str) -> int | None:
    match = _VOLNAME_RE.match(volid.partition(":")[2])
    return int(match.group(3)) if match else None


def used_volumes(root: str) -> set[str]:
    """Every volume the cluster's CT configs reference (so a new name never collides)."""
    out: set[str] = set()
    base = paths.nodes_dir(root)
    for node in os.listdir(base) if os.path.isdir(base) else []:
        directory = os.path.join(base, node, "lxc")
        for name in os.listdir(directory) if os.path.isdir(directory) else []:
            try:
                with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(":")
                if key == "rootfs" or re.fullmatch(r"(mp|unused)\d+", key):
                    out.add(volume_of(value.strip()))
    return out
