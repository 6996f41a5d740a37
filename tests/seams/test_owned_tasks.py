"""Every task has an owner: a failure is logged (or reaches the waiter) when it happens, and no
task outlives the object that started it (``OwnedTasks``, ``wait_first`` and their users: the
swarm's have-set watches and the share's CRC-32 computations)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from lanpeer_proto.messages import Manifest, Message

from lanpeer.download.sources import ChunkSource
from lanpeer.library.errors import ServeRefused
from lanpeer.net.peers import PeerTable
from lanpeer.net.swarm import SwarmHost
from lanpeer.share.crc import Crc32Cache
from lanpeer.tasks import OwnedTasks, TasksClosed, wait_first
from tests.seams.recorders import manifest

PEER = "p" * 52


class LogSeen(logging.Handler):
    """Sets an asyncio event when a record containing ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = asyncio.Event()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.records.append(record)
            self.seen.set()


@pytest.fixture
def log_seen() -> Iterator[type[LogSeen]]:
    handlers: list[LogSeen] = []

    def make(text: str) -> LogSeen:
        handler = LogSeen(text)
        logging.getLogger("lanpeer").addHandler(handler)
        handlers.append(handler)
        return handler

    yield make  # type: ignore[misc]
    for handler in handlers:
        logging.getLogger("lanpeer").removeHandler(handler)


def _others() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


# -- OwnedTasks and wait_first ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_failing_task_is_logged_and_its_siblings_run_on(log_seen: type[LogSeen]) -> None:
    failed = log_seen("the failing one failed")
    sibling_ended = asyncio.Event()

    async def fails() -> None:
        raise ValueError("boom")

    async def sibling() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            sibling_ended.set()

    async with OwnedTasks() as tasks:
        tasks.spawn(sibling(), "the sibling")
        tasks.spawn(fails(), "the failing one")
        await asyncio.wait_for(failed.seen.wait(), 5)
        assert not sibling_ended.is_set()  # one failure does not cancel the others
    assert sibling_ended.is_set()  # closing the owner ended it
    assert _others() == set()
    (record,) = failed.records
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)


@pytest.mark.asyncio
async def test_the_owners_own_error_is_not_wrapped() -> None:
    async def owner() -> None:
        async with OwnedTasks() as tasks:
            tasks.spawn(asyncio.Event().wait(), "a waiter")  # type: ignore[arg-type]
            raise KeyError("the owner's")

    with pytest.raises(KeyError):
        await owner()
    assert _others() == set()


@pytest.mark.asyncio
async def test_nothing_starts_after_the_owner_closed() -> None:
    tasks = OwnedTasks()
    await tasks.start()
    await tasks.aclose()

    async def never() -> None:
        raise AssertionError("ran after close")

    with pytest.raises(TasksClosed):
        tasks.spawn(never(), "late")  # closed, not left to warn "never awaited"
    assert not tasks.running
    await tasks.aclose()  # idempotent


@pytest.mark.asyncio
async def test_wait_first_reports_the_first_and_cancels_the_rest() -> None:
    first, never = asyncio.Event(), asyncio.Event()
    first.set()
    assert await wait_first(never.wait(), first.wait()) == {1}
    assert _others() == set()
    assert await wait_first(never.wait(), never.wait(), timeout=0.01) == frozenset()
    assert _others() == set()


@pytest.mark.asyncio
async def test_wait_first_raises_a_failing_wait_unwrapped() -> None:
    async def fails() -> None:
        raise LookupError("the wait broke")

    with pytest.raises(LookupError, match="the wait broke"):
        await wait_first(asyncio.Event().wait(), fails())
    assert _others() == set()


# -- the swarm's watches ----------------------------------------------------------------------


class NoFullSources:
    def sources_for(self, game_id: str, manifest_hash: bytes) -> Sequence[ChunkSource]:
        return []

    async def wait_sources_changed(self, timeout: float) -> None:  # noqa: ASYNC109 - seam
        await asyncio.Event().wait()  # nothing ever changes: only a cancel ends it


class BrokenFullSources(NoFullSources):
    def sources_for(self, game_id: str, manifest_hash: bytes) -> Sequence[ChunkSource]:
        raise RuntimeError("the source directory broke")


class BrokenLink:
    async def request(self, message: Message) -> Message:
        raise RuntimeError("a bug in the have-set watch")


class BrokenFetcher:
    def link(self, peer_id: str) -> BrokenLink:
        return BrokenLink()


class OnePeerHost(SwarmHost):
    """Sees one swarm-capable peer, whose link fails with a bug (fault injection)."""

    def watchable_peers(self, manifest: Manifest, full_sources: object) -> list[str]:
        return [PEER]


@pytest.mark.asyncio
async def test_a_failing_have_set_watch_is_logged_when_it_fails(
    tmp_path: Path, log_seen: type[LogSeen]
) -> None:
    failed = log_seen("have-set watch of")
    host = OnePeerHost(PeerTable(16), BrokenFetcher(), NoFullSources())  # type: ignore[arg-type]
    async with host.join(manifest("space-race"), tmp_path, [], NoFullSources()):
        # Not only at the next look at the peers (``hold``, 10 s) or never: at once.
        await asyncio.wait_for(failed.seen.wait(), 5)
    assert _others() == set()  # the watcher and its watches ended with the download
    (record,) = failed.records
    assert record.exc_info is not None
    assert "a bug in the have-set watch" in str(record.exc_info[1])


@pytest.mark.asyncio
async def test_a_failing_watcher_is_logged_and_the_download_goes_on(
    tmp_path: Path, log_seen: type[LogSeen]
) -> None:
    failed = log_seen("have-set watching failed")
    host = SwarmHost(PeerTable(16), BrokenFetcher(), NoFullSources())  # type: ignore[arg-type]
    async with host.join(manifest("space-race"), tmp_path, [], BrokenFullSources()) as member:
        await asyncio.wait_for(failed.seen.wait(), 5)
        assert member.partials == {}  # the download itself was not interrupted
    assert _others() == set()


@pytest.mark.asyncio
async def test_the_downloads_own_error_leaves_the_swarm_unwrapped(tmp_path: Path) -> None:
    host = SwarmHost(PeerTable(16), BrokenFetcher(), NoFullSources())  # type: ignore[arg-type]
    with pytest.raises(OSError, match="disk full"):
        async with host.join(manifest("space-race"), tmp_path, [], NoFullSources()):
            raise OSError("disk full")
    assert _others() == set()


# -- the share's CRC-32 computations ------------------------------------------------------------


class UnreadableLibrary:
    def __init__(self) -> None:
        self.asked = 0

    def open_served_file(self, game_id: str, manifest_hash: bytes, path: str) -> int:
        raise AssertionError("not reached: the index read fails first")

    def cached_crc32s(self, game_id: str) -> dict[str, int | None]:
        self.asked += 1
        raise OSError("the index is unreadable")

    def store_crc32(self, game_id: str, fd: int, path: str, crc32: int) -> bool:
        raise AssertionError("not reached")


@pytest.mark.asyncio
async def test_a_failing_crc_computation_reaches_every_waiter_once() -> None:
    library = UnreadableLibrary()
    cache = Crc32Cache(library)
    await cache.start()
    try:
        wanted = manifest("space-race")
        results = await asyncio.gather(
            cache.wait_crcs(wanted), cache.wait_crcs(wanted), return_exceptions=True
        )
        assert [str(r) for r in results] == ["the index is unreadable"] * 2
        assert all(isinstance(r, OSError) for r in results)
        assert library.asked == 1  # one computation for both waiters
    finally:
        await cache.aclose()
    assert _others() == set()


@pytest.mark.asyncio
async def test_a_closed_crc_cache_starts_nothing() -> None:
    cache = Crc32Cache(UnreadableLibrary())
    await cache.start()
    await cache.aclose()
    with pytest.raises(ServeRefused, match="not running"):
        await cache.wait_crcs(manifest("space-race"))
    assert _others() == set()


class SlowIndexLibrary(UnreadableLibrary):
    """The index read blocks in the CRC thread until released (to close the cache meanwhile)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.entered = asyncio.Event()
        self.release = threading.Event()

    def cached_crc32s(self, game_id: str) -> dict[str, int | None]:
        self.loop.call_soon_threadsafe(self.entered.set)
        self.release.wait(10)
        return {}


@pytest.mark.asyncio
async def test_closing_the_crc_cache_ends_a_computation_in_progress() -> None:
    library = SlowIndexLibrary(asyncio.get_running_loop())
    cache = Crc32Cache(library)
    await cache.start()
    waiter = asyncio.ensure_future(cache.wait_crcs(manifest("space-race")))
    await asyncio.wait_for(library.entered.wait(), 5)
    closing = asyncio.ensure_future(cache.aclose())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiter, 5)  # the waiter hears the computation ended
    library.release.set()  # the thread finishes its read; the pool shuts down
    await asyncio.wait_for(closing, 5)
    assert _others() == set()
