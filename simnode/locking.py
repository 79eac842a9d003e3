"""Per-container config lock, as `PVE::AbstractConfig->lock_config` (flock, 10 s timeout)."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from simnode import paths

LOCK_TIMEOUT_S = 10.0


class LockTimeout(Exception):
    """Message text of `PVE::Tools::lock_file_full` on timeout."""


def _open_lock(path: str) -> int:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


@contextmanager
def flocked(path: str, *, timeout: float = LOCK_TIMEOUT_S, shown_as: str = "") -> Iterator[None]:
    """Hold an exclusive flock on `path`; raise LockTimeout after `timeout` seconds."""
    fd = _open_lock(path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"can't lock file '{shown_as or path}' - got timeout") from None
                time.sleep(0.005)
        yield
    finally:
        os.close(fd)  # closing releases the flock


@contextmanager
def config_lock(root: str, vmid: int, *, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    with flocked(paths.config_lock_path(root, vmid), timeout=timeout, shown_as=paths.config_lock_rel(vmid)):
        yield


def try_config_lock(root: str, vmid: int) -> int | None:
    """Non-blocking attempt; returns an fd to close to release, or None if busy."""
    fd = _open_lock(paths.config_lock_path(root, vmid))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
