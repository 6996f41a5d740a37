"""Fixtures that start real lanpeerd processes (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon.harness import Lanpeerd


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list[Lanpeerd]]:
    """Append started daemons here; every one is stopped (then killed) at teardown."""
    started: list[Lanpeerd] = []
    yield started
    for daemon in started:
        daemon.kill()


@pytest.fixture
def daemon(tmp_path: Path, daemons: list[Lanpeerd]) -> Lanpeerd:
    running = Lanpeerd(tmp_path / "alpha").start()
    daemons.append(running)
    return running
