"""Fixtures that start real lanpeerd processes (see harness.py)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def _load_harness() -> object:
    name = "lanpeer_test_harness"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).parents[1] / "daemon" / "harness.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


harness = _load_harness()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[list]:
    """Append started daemons here; every one is stopped (then killed) at teardown."""
    started: list = []
    yield started
    for daemon in started:
        daemon.kill()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One daemon for the read-only tests of a module (each start costs about a second)."""
    running = harness.Lanpeerd(tmp_path_factory.mktemp("shared")).start()  # type: ignore[attr-defined]
    yield running
    running.kill()


@pytest.fixture
def daemon(tmp_path: Path, daemons: list):  # type: ignore[no-untyped-def]
    running = harness.Lanpeerd(tmp_path / "alpha").start()  # type: ignore[attr-defined]
    daemons.append(running)
    return running
