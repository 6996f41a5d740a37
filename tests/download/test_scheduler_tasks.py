"""The chunk scheduler owns its tasks: a cancel ends every request on the wire before ``run``
returns, an endgame copy ends when the first copy verifies, and a task that fails is logged
(``OwnedTasks``) instead of vanishing. Built directly over scripted in-memory sources."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from lanpeer.download.plan import ChunkRef
from lanpeer.download.scheduler import ChunkScheduler, SchedulerSettings
from lanpeer.download.sources import ChunkSource

GAME, VERSION = "game", b"v" * 32
WAIT = 10.0  # bound on every wait for an event here; none should take more than milliseconds


def chunks(n: int) -> list[ChunkRef]:
    return [ChunkRef("data.bin", i, i * 4, 4, bytes(32)) for i in range(n)]


class HangingSource:
    """Never answers; records each request starting and ending (cancelled or not).
    ``started`` is set once ``want`` requests are out."""

    def __init__(self, peer_id: str, want: int = 1) -> None:
        self.peer_id, self.want = peer_id, want
        self.started = asyncio.Event()
        self.asked = 0
        self.tasks: list[asyncio.Task[object]] = []  # the request tasks that asked
        self.cancelled = 0
        self.ended = 0

    async def fetch_chunk(
        self, game_id: str, manifest_hash: bytes, path: str, offset: int, length: int
    ) -> bytes:
        self.asked += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        if self.asked >= self.want:
            self.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.ended += 1
        raise AssertionError("unreachable")


class AnswersAfter:
    """Answers each request with zero bytes once ``gate`` is set."""

    def __init__(self, peer_id: str, gate: asyncio.Event) -> None:
        self.peer_id, self.gate = peer_id, gate

    async def fetch_chunk(
        self, game_id: str, manifest_hash: bytes, path: str, offset: int, length: int
    ) -> bytes:
        async with asyncio.timeout(WAIT):
            await self.gate.wait()
        return bytes(length)


class Directory:
    """A fixed list of sources; ``wait_sources_changed`` raises ``fails`` when given (and sets
    ``watched`` first)."""

    def __init__(self, sources: Sequence[ChunkSource], fails: Exception | None = None) -> None:
        self.sources, self.fails = sources, fails
        self.watched = asyncio.Event()

    def sources_for(self, game_id: str, manifest_hash: bytes) -> Sequence[ChunkSource]:
        return self.sources

    async def wait_sources_changed(self, timeout: float) -> None:  # noqa: ASYNC109
        self.watched.set()
        if self.fails is not None:
            raise self.fails
        await asyncio.sleep(timeout)  # the directory's poll: nothing changes here


async def store(chunk: ChunkRef, data: bytes) -> None:
    pass


def scheduler(
    n: int, directory: Directory, settings: SchedulerSettings | None = None
) -> ChunkScheduler:
    return ChunkScheduler(GAME, VERSION, chunks(n), directory, store, settings=settings)


@pytest.mark.asyncio
async def test_cancelling_run_ends_every_request_before_it_returns() -> None:
    hanging = [HangingSource(peer) for peer in "abc"]  # a new lane gets one request at first
    run = asyncio.create_task(scheduler(4, Directory(hanging)).run())
    async with asyncio.timeout(WAIT):
        for hang in hanging:
            await hang.started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert [(h.asked, h.cancelled, h.ended) for h in hanging] == [(1, 1, 1)] * 3


@pytest.mark.asyncio
async def test_an_endgame_copy_is_cancelled_when_the_first_copy_verifies() -> None:
    hang = HangingSource("a")
    answers = AnswersAfter("b", hang.started)  # answers only once the other copy is out
    # A short poll too: the loop learns a request went out (``Planner.asked``) only on its next
    # wake, so the endgame timer of a lone first request waits for the poll.
    settings = SchedulerSettings(endgame_after=0.01, sources_poll=0.05)
    told: list[int] = []  # per copy still out when the chunk is reported: cancel requests

    def on_chunk(chunk: ChunkRef, peer_id: str) -> None:
        told.extend(task.cancelling() for task in hang.tasks)

    sched = ChunkScheduler(
        GAME, VERSION, chunks(1), Directory([hang, answers]), store,
        on_chunk=on_chunk, settings=settings,
    )  # fmt: skip
    async with asyncio.timeout(WAIT):
        await sched.run()
    assert sched.counters.chunks_by_peer == {"b": 1}
    assert told == [1]  # cancelled as the first copy verified, not only when ``run`` ends
    assert hang.asked == hang.cancelled == 1


@pytest.mark.asyncio
async def test_a_failing_source_watcher_is_logged_and_the_download_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory = Directory([], fails=RuntimeError("watch broke"))
    directory.sources = [AnswersAfter("b", directory.watched)]  # answers once the watch broke
    sched = scheduler(3, directory)
    with caplog.at_level(logging.ERROR, logger="lanpeer.download.scheduler"):
        async with asyncio.timeout(WAIT):
            await sched.run()
    assert sched.counters.chunks_fetched == 3
    failed = [r for r in caplog.records if r.getMessage() == "game: the source watcher failed"]
    assert len(failed) == 1
    assert failed[0].exc_info is not None
    assert str(failed[0].exc_info[1]) == "watch broke"


class MeasuredHanging(HangingSource):
    """A hanging source that reports a round-trip time, as a peer's ``PeerChunkSource`` does."""

    def __init__(self, peer_id: str, rtt: float) -> None:
        super().__init__(peer_id)
        self.rtt = rtt


@pytest.mark.asyncio
async def test_the_scheduler_hands_each_sources_rtt_to_the_planner() -> None:
    far, near = MeasuredHanging("far", 0.030), MeasuredHanging("near", 0.0004)
    sched = scheduler(1, Directory([far, near]))  # listed first, equal rates: far chose first
    run = asyncio.create_task(sched.run())
    async with asyncio.timeout(WAIT):
        await near.started.wait()
    assert (far.asked, near.asked) == (0, 1)  # the one chunk went to the nearer holder
    assert {p: lane.rtt for p, lane in sched.lanes.items()} == {"far": 0.030, "near": 0.0004}
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
