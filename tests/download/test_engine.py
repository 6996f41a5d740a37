"""Downloads end to end with in-process sources over real files, real staging, real commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lanpeer_proto.messages import GameSummary, Manifest

from lanpeer.download import DownloadManager, ProgressEvent, SourceSet
from lanpeer.download.operations import Operation, OpKind
from lanpeer.download.scheduler import SchedulerSettings
from lanpeer.download.staging import PART_DIR
from tests.download.helpers import (
    CHUNK,
    CorruptSource,
    DirSource,
    DyingSource,
    GatedSource,
    SlowSource,
    in_catalog,
    manifest_of,
    open_library,
    open_part_fds,
    random_bytes,
    tree_bytes,
    wait_for,
    write_game,
)

GAME = "space-race"


def seed_game(tmp_path: Path, size: int = 20 * CHUNK + 123) -> Path:
    files = {
        "game.eti": random_bytes(size, 1),
        "extra/cover.png": random_bytes(3 * CHUNK, 2),
        "empty.txt": b"",
    }
    return write_game(tmp_path / "seed" / GAME, files)


def summary_of(m: Manifest) -> GameSummary:
    size = sum(f.size for f in m.files)
    return GameSummary(id=m.game_id, name="Space Race", version=m.version,
                       manifest_hash=m.manifest_hash, size=size)  # fmt: skip


async def download(root: Path, sources: SourceSet, manifest, **kw):  # type: ignore[no-untyped-def]
    """Download into a real GameLibrary at ``root``; on success check what the library sees."""
    async with open_library(root) as lib, DownloadManager(lib, sources, **kw) as mgr:
        op = mgr.submit_download(GAME, manifest, summary=summary_of(manifest))
        async with asyncio.timeout(30):
            await op.wait_finished()
        if op.state == "done":
            local = await lib.wait_manifest(GAME, for_peer=False)
            assert local.manifest_hash == manifest.manifest_hash
            assert in_catalog(lib, GAME)
            assert [g.id for g in lib.snapshot()] == [GAME]
        return op, op


def sources_of(manifest, *srcs) -> SourceSet:  # type: ignore[no-untyped-def]
    s = SourceSet()
    for src in srcs:
        s.add(GAME, manifest.manifest_hash, src)
    return s


@pytest.mark.asyncio
async def test_one_source_downloads_every_byte(tmp_path: Path) -> None:
    seed = seed_game(tmp_path)
    m = manifest_of(seed, GAME)
    lib = tmp_path / "games"
    op, job = await download(lib, sources_of(m, DirSource("A", seed, m.manifest_hash)), m)
    assert op.state == "done", op.error
    dest = tmp_path / "games" / GAME
    assert tree_bytes(dest) == tree_bytes(seed)
    assert not (dest / PART_DIR).exists()
    assert job.counters.chunks_fetched == sum(len(f.chunk_hashes) for f in m.files if f.size)


@pytest.mark.asyncio
async def test_three_sources_each_serve(tmp_path: Path) -> None:
    seed = seed_game(tmp_path, size=60 * CHUNK)
    m = manifest_of(seed, GAME)
    srcs = [DirSource(p, seed, m.manifest_hash) for p in "ABC"]
    op, _ = await download(tmp_path / "games", sources_of(m, *srcs), m)
    assert op.state == "done", op.error
    assert all(sum(s.served.values()) >= 1 for s in srcs)
    assert tree_bytes(tmp_path / "games" / GAME) == tree_bytes(seed)


@pytest.mark.asyncio
async def test_corrupt_peer_is_dropped_and_download_completes(tmp_path: Path) -> None:
    seed = seed_game(tmp_path)
    m = manifest_of(seed, GAME)
    bad = CorruptSource("BAD", seed, m.manifest_hash)
    good = DirSource("GOOD", seed, m.manifest_hash)
    op, job = await download(tmp_path / "games", sources_of(m, bad, good), m)
    assert op.state == "done", op.error
    assert job.counters.rejected >= 1
    assert sum(bad.served.values()) <= SchedulerSettings().min_depth  # banned after first reply
    assert "BAD" not in job.counters.chunks_by_peer
    assert tree_bytes(tmp_path / "games" / GAME) == tree_bytes(seed)


@pytest.mark.asyncio
async def test_dying_peer_leaves_the_rest_to_the_others(tmp_path: Path) -> None:
    seed = seed_game(tmp_path, size=40 * CHUNK)
    m = manifest_of(seed, GAME)
    dying = DyingSource("DIES", seed, m.manifest_hash, serve=5)
    others = [DirSource(p, seed, m.manifest_hash) for p in "BC"]
    op, job = await download(tmp_path / "games", sources_of(m, dying, *others), m)
    assert op.state == "done", op.error
    assert tree_bytes(tmp_path / "games" / GAME) == tree_bytes(seed)
    n_chunks = sum(len(f.chunk_hashes) for f in m.files if f.size)
    assert job.counters.chunks_fetched == n_chunks  # each chunk verified exactly once
    assert job.counters.redundant == 0


class OpensGate(DirSource):
    """A fast peer that releases ``slow`` once it has served ``count`` chunks."""

    def __init__(self, *args: object, slow: GatedSource, count: int) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.slow, self.count = slow, count

    async def fetch_chunk(
        self, game_id: str, manifest_hash: bytes, path: str, offset: int, length: int
    ) -> bytes:
        data = await super().fetch_chunk(game_id, manifest_hash, path, offset, length)
        if sum(self.served.values()) >= self.count:
            self.slow.gate.set()
        return data


@pytest.mark.asyncio
async def test_slow_peer_gets_less_work(tmp_path: Path) -> None:
    """An unproven peer has one request in flight: while it sits on it, the fast peer fetches
    every other chunk. Exact, whatever the machine's speed: the slow peer answers only once
    the fast one is done, and endgame copies are pushed out of the test's reach."""
    seed = seed_game(tmp_path, size=40 * CHUNK)
    m = manifest_of(seed, GAME)
    total = sum(len(f.chunk_hashes) for f in m.files)
    slow = GatedSource("SLOW", seed, m.manifest_hash, serve=0)
    fast = OpensGate("FAST", seed, m.manifest_hash, slow=slow, count=total - 1)
    settings = SchedulerSettings(endgame_after=3600.0)
    op, job = await download(tmp_path / "games", sources_of(m, slow, fast), m, settings=settings)
    assert op.state == "done", op.error
    assert job.counters.chunks_by_peer == {"FAST": total - 1, "SLOW": 1}
    assert (slow.requested, job.counters.redundant) == (1, 0)


@pytest.mark.asyncio
async def test_stalled_until_a_source_returns(tmp_path: Path) -> None:
    seed = seed_game(tmp_path)
    m = manifest_of(seed, GAME)
    sources = SourceSet()
    states: list[str] = []
    async with open_library(tmp_path / "games") as lib, DownloadManager(lib, sources) as mgr:
        mgr.add_listener(lambda ev: states.append(ev.state))
        op = mgr.submit_download(GAME, m)
        await wait_for(lambda: "stalled" in states)
        assert mgr.operations()[0].state == "stalled"
        sources.add(GAME, m.manifest_hash, DirSource("LATE", seed, m.manifest_hash))
        async with asyncio.timeout(10):
            await op.wait_finished()
    assert op.state == "done", op.error
    assert tree_bytes(tmp_path / "games" / GAME) == tree_bytes(seed)


@pytest.mark.asyncio
async def test_no_source_for_too_long_fails_clearly(tmp_path: Path) -> None:
    seed = seed_game(tmp_path)
    m = manifest_of(seed, GAME)
    settings = SchedulerSettings(stall_timeout=0.3)
    op, _ = await download(tmp_path / "games", SourceSet(), m, settings=settings)
    assert op.state == "failed"
    assert op.error_code == "no_sources"
    assert "no peer has served" in (op.error or "")
    assert not (tmp_path / "games" / GAME / "version.ini").exists()
    assert open_part_fds() == []  # kept for resume, but closed
    assert (tmp_path / "games" / GAME / ".lanpeer.part").is_dir()


@pytest.mark.asyncio
async def test_second_operation_on_a_game_conflicts_and_lanes_queue(tmp_path: Path) -> None:
    from lanpeer.errors import ConflictError

    seed = seed_game(tmp_path)
    m = manifest_of(seed, GAME)
    async with (
        open_library(tmp_path / "games") as lib,
        DownloadManager(lib, SourceSet(), download_lanes=1) as mgr,
    ):
        mgr.submit_download(GAME, m)
        with pytest.raises(ConflictError):
            mgr.submit_download(GAME, m)
        other = m.model_copy(update={"game_id": "other"})
        mgr.submit_download("other", other)
        await asyncio.sleep(0)
        rows = {r.game_id: r for r in mgr.operations()}
        assert rows["other"].state == "queued"
        assert rows["other"].queue_position == 1
        assert rows["other"].lane == "download"
        ran: list[str] = []

        async def job(op: Operation) -> None:
            ran.append("installed")

        op = mgr.queue.submit("third", OpKind.INSTALL, job)  # the general lane runs meanwhile
        async with asyncio.timeout(2):
            await op.wait_finished()
        assert ran == ["installed"]
        assert op.state == "done"
        assert await mgr.cancel("other")
        assert await mgr.cancel(GAME)
    assert not (tmp_path / "games" / GAME).exists()


@pytest.mark.asyncio
async def test_progress_events_ops_rows_and_install_after(tmp_path: Path) -> None:
    seed = seed_game(tmp_path, size=30 * CHUNK)
    m = manifest_of(seed, GAME)
    installed: list[tuple[str, bool]] = []

    async def installer(game_id: str, game_dir: Path) -> None:
        installed.append((game_id, (game_dir / "version.ini").is_file()))

    src = DirSource("A", seed, m.manifest_hash)
    events: list[ProgressEvent] = []
    async with (
        open_library(tmp_path / "games") as lib,
        DownloadManager(lib, sources_of(m, src), installer=installer, max_download=1 << 20) as mgr,
    ):
        mgr.add_listener(events.append)
        op = mgr.submit_download(GAME, m, then_install=True)
        await wait_for(lambda: op.bytes_done >= 10 * CHUNK or op.state in ("done", "failed"))
        assert op.state == "downloading", (op.state, op.error)
        (row,) = mgr.operations()
        assert (row.game_id, row.kind, row.lane, row.state) == (GAME, "download", "download",
                                                                 "downloading")  # fmt: skip
        assert row.sources == ["A"]
        assert row.rate > 0
        assert row.bytes_total == sum(f.size for f in m.files)
        assert row.eta is not None
        async with asyncio.timeout(20):
            await op.wait_finished()
    assert installed == [(GAME, True)]
    states = [e.state for e in events]
    assert {"downloading", "committing", "installing"} <= set(states)
    done = [e.bytes_done for e in events]
    assert done == sorted(done)
    assert any(e.peers.get("A", 0) > 0 for e in events)
    final = events[-1]
    assert (final.event, final.ok, final.peers_used) == ("finished", True, ["A"])
    assert final.bytes_done == final.bytes_total


class TurncoatSource(SlowSource):
    """Serves good bytes, then (with requests still in flight) starts corrupting them."""

    def __init__(self, *args: object, good_for: int, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.good_for = good_for

    def mangle(self, data: bytes) -> bytes:
        if sum(self.served.values()) < self.good_for:
            return data
        return bytes([data[0] ^ 0xFF]) + data[1:]


@pytest.mark.asyncio
async def test_peer_turning_bad_loses_its_in_flight_chunks_to_others(tmp_path: Path) -> None:
    seed = seed_game(tmp_path, size=60 * CHUNK)
    m = manifest_of(seed, GAME)
    bad = TurncoatSource("TURN", seed, m.manifest_hash, delay=0.01, good_for=12)
    good = SlowSource("GOOD", seed, m.manifest_hash, delay=0.02)
    op, job = await download(tmp_path / "games", sources_of(m, bad, good), m)
    assert op.state == "done", op.error
    assert job.counters.rejected >= 1
    assert job.counters.chunks_by_peer["TURN"] <= 12
    assert tree_bytes(tmp_path / "games" / GAME) == tree_bytes(seed)
