"""Atomic file replacement: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import _thread
import contextlib
import os


def write_atomic(path: str, data: str | bytes, *, fsync: bool = False) -> None:
    """Write to a temp file beside `path`, then rename over it.

    The temp name carries pid and thread id so concurrent writers never share one.
    """
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{_thread.get_ident()}.tmp")
    payload = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, payload)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        # The directory may have vanished (a CT stopped under us); leave nothing behind.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_text(path: str) -> str:
    """Read a file keeping undecodable bytes, so a rewrite preserves them byte for byte."""
    with open(path, "rb") as fh:
        return fh.read().decode("utf-8", "surrogateescape")


def append_line(path: str, line: str) -> None:
    """Append one line with a single O_APPEND write, so concurrent writers never interleave."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)
