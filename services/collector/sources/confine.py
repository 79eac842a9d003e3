"""Paths under the collector's root, resolved, and refused when a symlink leads outside it."""

from __future__ import annotations

from pathlib import Path

from services.collector.sources.base import SourceError


def resolve_root(root: Path) -> Path:
    try:
        resolved = root.resolve(strict=True)
    except OSError as exc:
        raise SourceError(f"collector root {root} does not exist or cannot be read: {exc}") from exc
    if not resolved.is_dir():
        raise SourceError(f"collector root {root} is not a directory")
    return resolved


def confined(root: Path, relative: str) -> Path:
    """`root/relative` with every symlink resolved; an escape from root is an error."""
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root):
        raise SourceError(f"{root / relative} resolves to {candidate}, outside the collector root {root}")
    return candidate
