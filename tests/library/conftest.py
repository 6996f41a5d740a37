"""Fixtures for library tests: tiny real game dirs and libraries that are always closed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from lanpeer.library import GameLibrary


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
