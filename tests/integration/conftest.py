"""Fixtures several integration test modules share (the suite-wide ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def processes() -> Iterator[list[Any]]:
    """Service processes a test starts: each one still running is stopped at the end, and
    the stderr pipe it was given closed."""
    started: list[Any] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(10)
        if process.stderr is not None:
            process.stderr.close()
