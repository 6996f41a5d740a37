"""Download tests use 64 KiB chunks (``GameLibrary(chunk_size=CHUNK)`` in the helpers): the
engine takes chunk sizes from the manifest, so small test games still span many chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio


@pytest_asyncio.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running on its loop (downloads own every task they start)."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before - {asyncio.current_task()} if not t.done()]
    assert not leaked, f"tasks left running: {leaked}"
