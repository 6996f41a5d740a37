"""Download tests use 64 KiB chunks: the engine takes chunk sizes from the manifest, and the
library's hasher reads its module constant, so small test games still span many chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from lanpeer.library import manifest as library_manifest
from lanpeer.library import scanner as library_scanner
from tests.download.helpers import CHUNK


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(library_manifest, "CHUNK_SIZE", CHUNK)
    monkeypatch.setattr(library_scanner, "CHUNK_SIZE", CHUNK)


@pytest_asyncio.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running on its loop (downloads own every task they start)."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before - {asyncio.current_task()} if not t.done()]
    assert not leaked, f"tasks left running: {leaked}"
