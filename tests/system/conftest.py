"""Fixtures for tests that start real processes: `make test-fast` leaves this folder out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import System


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    """Starts processes on free ports; stops every one of them after the test."""
    started = System(tmp_path)
    try:
        yield started
    finally:
        started.stop()
