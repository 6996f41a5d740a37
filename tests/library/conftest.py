"""Fixtures for library tests: tiny real game dirs and libraries that are always closed."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from watchdog.utils import BaseThread

from lanpeer.library import GameLibrary


def _library_threads() -> set[threading.Thread]:
    """Threads the library starts: its scan/hash pools and watchdog's observer and emitters."""
    return {
        t
        for t in threading.enumerate()
        if t.name.startswith("lanpeer-") or isinstance(t, BaseThread)
    }


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fails a test that leaves a library thread running after its libraries are closed."""
    before = _library_threads()
    yield
    leaked = _library_threads() - before
    for thread in leaked:
        thread.join(5)
    assert not [t for t in leaked if t.is_alive()], "library threads left running"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "games"
    path.mkdir()
    return path


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest_asyncio.fixture
async def open_library(
    state_dir: Path,
) -> AsyncIterator[Callable[..., Any]]:
    """``await open_library(roots, **kwargs)``: a started library, closed at teardown."""
    opened: list[GameLibrary] = []

    async def factory(roots: list[Path], **kwargs: Any) -> GameLibrary:
        kwargs.setdefault("watch", False)
        kwargs.setdefault("debounce", 0.02)
        library = GameLibrary(roots, kwargs.pop("state_dir", state_dir), **kwargs)
        await library.start()
        opened.append(library)
        await library.wait_watching()
        return library

    yield factory
    for library in opened:
        await library.aclose()
