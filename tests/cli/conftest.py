"""Fixtures that start real lanpeerd processes (the daemon tests' harness and fixtures)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon.conftest import daemon, daemons
from tests.daemon.harness import Lanpeerd

__all__ = ["daemon", "daemons"]  # fixtures shared with the daemon tests


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lanpeerd]:
    """One daemon for the read-only tests of a module (each start costs about a second)."""
    running = Lanpeerd(tmp_path_factory.mktemp("shared")).start()
    yield running
    running.kill()
