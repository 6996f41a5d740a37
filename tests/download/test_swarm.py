"""Partial sources between real peers on loopback (SPEC §7a): GameLibrary + PeerNode (QUIC, bulk
TCP) on each side; downloaders serve the chunks they verified and use each other's."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import GameSummary, GetHaves, Haves, Manifest

from lanpeer.control.resume import wait_resume_offer
from lanpeer.download.plan import ChunkRef, file_chunks
from lanpeer.download.resolve import MAX_MANIFEST_ASKS, ManifestSearch, version_manifest
from lanpeer.download.sources import SourceSet
from lanpeer.download.staging import PART_DIR, STATE_NAME
from lanpeer.library.samples import write_catalog
from lanpeer.net.errors import ChunkRefused
from lanpeer.net.node import PeerNode
from lanpeer.net.swarm_member import PartialHolder
from lanpeer.ratelimit import TokenBucket
from tests.download.helpers import (
    CHUNK,
    DirSource,
    GatedSource,
    manifest_of,
    random_bytes,
    tree_bytes,
    wait_for,
    write_game,
)
from tests.download.peers import Leecher, leecher, seeder

GAME = "swarm-fest"
pytestmark = pytest.mark.timeout(60)


def game_files(size: int = 48 * CHUNK) -> dict[str, bytes]:
    return {"data.eti": random_bytes(size, 11), "cover.png": random_bytes(CHUNK // 2, 5)}


def put_game(home: Path, files: dict[str, bytes]) -> Path:
    return write_game(home / "games" / GAME, files, "1.0")


async def haves(node: PeerNode, peer_id: str, manifest: Manifest, since: int = 0) -> Haves:
    request = GetHaves(game_id=GAME, manifest_hash=manifest.manifest_hash, since=since, wait=0.0)
    answer = await node._fetcher.link(peer_id).request(request)
    assert isinstance(answer, Haves)
    return answer


def held_numbers(answer: Haves) -> set[int]:
    assert answer.bits is not None
    return {i for i in range(len(answer.bits) * 8) if answer.bits[i >> 3] & (1 << (i & 7))}


async def fetch(node: PeerNode, peer_id: str, manifest: Manifest, chunk: ChunkRef) -> bytes:
    return await node.fetch_chunk(
        peer_id, GAME, manifest.manifest_hash, chunk.path, chunk.offset, chunk.length
    )


@pytest.mark.asyncio
async def test_two_leechers_trade_chunks_while_the_seeder_is_slow(tmp_path: Path) -> None:
    files = game_files()
    src = put_game(tmp_path / "seed", files)
    # 1 MiB/s out of the seeder for ~3.1 MiB to each of two leechers: alone they need ~6 s;
    # trading, each gets about half from the seeder and half from the other.
    async with AsyncExitStack() as stack:
        s = await stack.enter_async_context(
            seeder(tmp_path / "seed", "s", upload_limiter=TokenBucket(1 << 20))
        )
        a = await stack.enter_async_context(leecher(tmp_path / "a", [s.listen], name="a"))
        b = await stack.enter_async_context(
            leecher(tmp_path / "b", [s.listen, a.node.listen], name="b")
        )
        await wait_for(lambda: any(p.connected for p in a.node.peers() if p.name == "b"))
        manifest = await a.wait_offers(GAME, 1)
        await b.wait_offers(GAME, 1)
        ops = [x.manager.submit_download(GAME, manifest, summary=x.summary(GAME)) for x in (a, b)]
        async with asyncio.timeout(30):
            for op in ops:
                await op.wait_finished()
        assert [op.state for op in ops] == ["done", "done"], [op.error for op in ops]
        counters = [op.counters for op in ops]
        from_partial = [c.bytes_from_partial for c in counters]
        assert sum(from_partial) > 0, counters  # at least one leecher used the other
        for other, c in ((b, counters[0]), (a, counters[1])):
            if c.bytes_from_partial:
                assert other.node.identity.peer_id in c.chunks_by_peer
    for home in ("a", "b"):
        assert tree_bytes(tmp_path / home / "games" / GAME) == tree_bytes(src)


async def gated_download(
    me: Leecher, src: Path, manifest: Manifest, serve: int
) -> tuple[GatedSource, asyncio.Future[None]]:
    """``me`` downloads from a local source that serves ``serve`` chunks and then holds."""
    gated = GatedSource("gated", src, manifest.manifest_hash, serve=serve)
    assert isinstance(me.manager.sources, SourceSet)
    me.manager.sources.add(GAME, manifest.manifest_hash, gated)
    op = me.manager.submit_download(GAME, manifest)
    await asyncio.wait_for(gated.holding.wait(), 10)
    current = me.manager.current(GAME)
    assert current is not None
    await wait_for(lambda: current.counters.chunks_fetched >= serve)
    return gated, asyncio.ensure_future(op.wait_finished())


def saved_chunks(game_dir: Path) -> int:
    """Chunks the resume state records as verified (0 before the first checkpoint)."""
    try:
        state = json.loads((game_dir / PART_DIR / STATE_NAME).read_text())
    except (OSError, ValueError):
        return 0
    return sum(bin(b).count("1") for text in state["files"].values()
               for b in base64.b64decode(text))  # fmt: skip


def all_chunks(manifest: Manifest) -> list[ChunkRef]:
    return [c for f in manifest.files for c in file_chunks(f)]


@contextlib.asynccontextmanager
async def holder_and_asker(
    tmp_path: Path, **holder: object
) -> AsyncIterator[tuple[Leecher, Leecher]]:
    """``a`` and ``c`` (connected to ``a``), downloaders with no full sources but the ones a
    test gives them (``SourceSet``); ``c`` asks for what ``a`` holds."""
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(
            leecher(tmp_path / "a", [], name="a", directory=lambda _n: SourceSet(), **holder)
        )
        c = await stack.enter_async_context(
            leecher(tmp_path / "c", [a.node.listen], name="c", directory=lambda _n: SourceSet())
        )
        await wait_for(lambda: any(p.connected for p in c.node.peers()))
        yield a, c


@pytest.mark.asyncio
async def test_a_partial_source_serves_only_verified_chunks_and_stops_on_cancel(
    tmp_path: Path,
) -> None:
    files = game_files(size=16 * CHUNK)
    src = put_game(tmp_path / "src", files)
    manifest = manifest_of(src, GAME)
    async with holder_and_asker(tmp_path) as (a, c):
        a_id = a.node.identity.peer_id
        gated, finished = await gated_download(a, src, manifest, serve=3)
        chunks = all_chunks(manifest)
        served = {(path, offset) for path, offset in gated.served}  # each one verified
        verified = [i for i, ch in enumerate(chunks) if (ch.path, ch.offset) in served]
        assert len(verified) == 3

        answer = await haves(c.node, a_id, manifest)
        assert answer.serving
        assert held_numbers(answer) == set(verified)
        for i in verified:  # exactly the verified bytes, over the bulk path
            data = await fetch(c.node, a_id, manifest, chunks[i])
            ref = chunks[i]
            assert data == (src / ref.path).read_bytes()[ref.offset : ref.offset + ref.length]
        missing = next(ch for i, ch in enumerate(chunks) if i not in verified)
        with pytest.raises(ChunkRefused) as refused:
            await fetch(c.node, a_id, manifest, missing)
        assert refused.value.wire_code is ErrorCode.NOT_FOUND
        # Not a chunk boundary of that version: refused, never bytes of a wrong range.
        odd = chunks[verified[0]]
        with pytest.raises(ChunkRefused) as refused:
            await c.node.fetch_chunk(a_id, GAME, manifest.manifest_hash, odd.path,
                                     odd.offset + 1, odd.length - 1)  # fmt: skip
        assert refused.value.wire_code is ErrorCode.BAD_RANGE

        await a.manager.cancel(GAME)
        await finished
        answer = await haves(c.node, a_id, manifest)
        assert not answer.serving
        with pytest.raises(ChunkRefused) as refused:
            await fetch(c.node, a_id, manifest, chunks[verified[0]])
        assert refused.value.wire_code is ErrorCode.NOT_FOUND


@pytest.mark.asyncio
async def test_have_increments_follow_the_whole_set(tmp_path: Path) -> None:
    files = game_files(size=16 * CHUNK)
    src = put_game(tmp_path / "src", files)
    manifest = manifest_of(src, GAME)
    async with holder_and_asker(tmp_path) as (a, c):
        a_id = a.node.identity.peer_id
        gated, finished = await gated_download(a, src, manifest, serve=2)
        first = await haves(c.node, a_id, manifest)
        assert len(held_numbers(first)) == 2
        # The requests a's download holds open at the gated source are announced as a hint.
        assert first.fetching
        assert not set(first.fetching) & held_numbers(first)
        nothing = await haves(c.node, a_id, manifest, since=first.seq)
        assert nothing.bits is None
        assert (nothing.added, nothing.seq) == ([], first.seq)
        job = a.manager.current(GAME)
        assert job is not None
        gated.gate.set()  # the held requests go through, later ones hold again
        gated.gate.clear()
        await wait_for(lambda: job.counters.chunks_fetched >= 3)
        more = await haves(c.node, a_id, manifest, since=first.seq)
        assert more.bits is None
        assert more.added
        assert not set(more.added) & held_numbers(first)
        assert more.seq > first.seq
        gated.gate.set()  # everything else arrives
        await finished
        # The download committed: the game is served whole now, not as a partial source.
        after = await haves(c.node, a_id, manifest, since=first.seq)
        assert not after.serving


@pytest.mark.asyncio
async def test_no_swarm_serves_nothing_partial(tmp_path: Path) -> None:
    files = game_files(size=16 * CHUNK)
    src = put_game(tmp_path / "src", files)
    manifest = manifest_of(src, GAME)
    async with holder_and_asker(tmp_path, swarm=False) as (a, c):
        a_id = a.node.identity.peer_id
        gated, finished = await gated_download(a, src, manifest, serve=2)
        assert not (await haves(c.node, a_id, manifest)).serving
        held = next(ch for ch in all_chunks(manifest) if (ch.path, ch.offset) in gated.served)
        with pytest.raises(ChunkRefused) as refused:
            await fetch(c.node, a_id, manifest, held)
        assert refused.value.wire_code is ErrorCode.NOT_FOUND
        gated.gate.set()
        await finished


@pytest.mark.asyncio
async def test_a_resumed_download_advertises_what_it_already_holds(tmp_path: Path) -> None:
    files = game_files(size=16 * CHUNK)
    src = put_game(tmp_path / "src", files)
    manifest = manifest_of(src, GAME)
    async with leecher(tmp_path / "a", [], name="a", directory=lambda _n: SourceSet()) as a:
        gated, finished = await gated_download(a, src, manifest, serve=3)
        held_before = {(path, offset) for path, offset in gated.served}
        await wait_for(lambda: saved_chunks(tmp_path / "a" / "games" / GAME) == 3)  # checkpoint
    # a's daemon stopped mid-download (shutdown keeps .lanpeer.part/ for resume); it comes back.
    finished.cancel()
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(
            leecher(tmp_path / "a", [], name="a", directory=lambda _n: SourceSet())
        )
        c = await stack.enter_async_context(leecher(tmp_path / "c", [a.node.listen], name="c"))
        await wait_for(lambda: any(p.connected for p in c.node.peers()))
        still = GatedSource("gated", src, manifest.manifest_hash, serve=0)  # serves nothing
        assert isinstance(a.manager.sources, SourceSet)
        a.manager.sources.add(GAME, manifest.manifest_hash, still)
        a.manager.submit_download(GAME, manifest)
        await asyncio.wait_for(still.holding.wait(), 10)  # resumed and asking for the rest
        answer = await haves(c.node, a.node.identity.peer_id, manifest)
        chunks = all_chunks(manifest)
        held = {(chunks[i].path, chunks[i].offset) for i in held_numbers(answer)}
        assert held == held_before
        assert len(held) == 3
        still.gate.set()


# -- delta updates: unchanged files are served from the game dir ------------------------------

SAME = 12  # chunks of the file 1.0 and 1.1 share


def delta_versions(tmp_path: Path) -> tuple[Path, Manifest]:
    """1.1 in ``src`` (its manifest); 1.0 installed and served in ``a``'s library: same.eti is
    the same in both, changed.eti is not (no chunk in common, so nothing is copied)."""
    same = random_bytes(SAME * CHUNK, 21)
    src = write_game(tmp_path / "src" / GAME, {"same.eti": same,
                                               "changed.eti": random_bytes(4 * CHUNK, 23)},
                     "1.1")  # fmt: skip
    write_game(tmp_path / "a" / "games" / GAME, {"same.eti": same,
                                                  "changed.eti": random_bytes(4 * CHUNK, 22)},
               "1.0")  # fmt: skip
    write_catalog(tmp_path / "a" / "games" / "catalog.toml", [GAME])
    return src, manifest_of(src, GAME)


def chunks_of(manifest: Manifest, path: str) -> list[ChunkRef]:
    return [c for c in all_chunks(manifest) if c.path == path]


@pytest.mark.asyncio
async def test_a_delta_update_serves_its_unchanged_files_to_another_downloader(
    tmp_path: Path,
) -> None:
    src, manifest = delta_versions(tmp_path)
    async with holder_and_asker(tmp_path) as (a, b):
        await a.library.wait_manifest(GAME)  # 1.0 hashed and served
        a_id = a.node.identity.peer_id
        # a updates to 1.1 from a source that holds every request: it has fetched nothing.
        gated, a_done = await gated_download(a, src, manifest, serve=0)
        # b downloads 1.1 (pinned: the only full offer it sees is a's 1.0) with no full
        # source yet: all it can get is what a holds, the unchanged file in a's game dir.
        b_op = b.manager.submit_download(GAME, manifest, pin="1.1")
        await wait_for(lambda: b_op.counters.chunks_by_peer.get(a_id, 0) >= SAME)
        assert b_op.counters.chunks_by_peer == {a_id: SAME}
        assert b_op.counters.bytes_from_partial == SAME * CHUNK
        assert a.node.uploads.total_bytes == SAME * CHUNK  # counted as a's uploads too
        # What `game GAME` shows on b: a holds the unchanged file of 1.1.
        assert b.node.swarm.partial_holders() == [
            PartialHolder(a_id, GAME, "1.1", manifest.manifest_hash, SAME, SAME * CHUNK)
        ]
        # Then the full source: b gets the rest, a its changed file, both end on 1.1.
        assert isinstance(b.manager.sources, SourceSet)
        b.manager.sources.add(GAME, manifest.manifest_hash,
                              DirSource("full", src, manifest.manifest_hash))  # fmt: skip
        gated.gate.set()
        async with asyncio.timeout(30):
            await a_done
            await b_op.wait_finished()
        assert b_op.state == "done", b_op.error
        assert b_op.counters.chunks_by_peer[a_id] == SAME  # nothing else came from a
        # Committed: a serves 1.1 whole now, the unchanged file included (the library's).
        new_hash = [manifest.manifest_hash]  # once a's rescan after the commit is done
        await wait_for(lambda: [g.manifest_hash for g in a.library.snapshot()] == new_hash)
        ref = chunks_of(manifest, "same.eti")[0]
        data = await fetch(b.node, a_id, manifest, ref)
        assert data == (src / ref.path).read_bytes()[ref.offset : ref.offset + ref.length]
    for home in ("a", "c"):
        assert tree_bytes(tmp_path / home / "games" / GAME) == tree_bytes(src)


@pytest.mark.asyncio
@pytest.mark.parametrize("change", ["rewritten", "removed"])
async def test_an_unchanged_file_that_changes_on_disk_is_refused_never_served(
    tmp_path: Path, change: str
) -> None:
    src, manifest = delta_versions(tmp_path)
    async with holder_and_asker(tmp_path) as (a, c):
        await a.library.wait_manifest(GAME)
        a_id = a.node.identity.peer_id
        gated, finished = await gated_download(a, src, manifest, serve=0)
        numbers = {c: i for i, c in enumerate(all_chunks(manifest))}
        same = chunks_of(manifest, "same.eti")
        answer = await haves(c.node, a_id, manifest)
        assert held_numbers(answer) == {numbers[ch] for ch in same}  # held from the start
        ref = same[3]
        data = await fetch(c.node, a_id, manifest, ref)  # exact bytes from the game dir
        assert data == (src / ref.path).read_bytes()[ref.offset : ref.offset + ref.length]
        # Someone writes into the installed file (same size: its bytes are no longer the ones
        # hashed) or deletes it. Refused, and the file leaves the have-set (whole set again).
        live = tmp_path / "a" / "games" / GAME / "same.eti"
        if change == "removed":
            live.unlink()
        else:
            with live.open("r+b") as f:
                f.seek(ref.offset)
                f.write(b"\0" * 16)
            os.utime(live, ns=(1, 1))
        with pytest.raises(ChunkRefused) as refused:
            await fetch(c.node, a_id, manifest, ref)
        assert refused.value.wire_code is ErrorCode.NOT_FOUND
        with pytest.raises(ChunkRefused) as refused:  # another chunk of it: unlisted already
            await fetch(c.node, a_id, manifest, same[0])
        assert refused.value.wire_code is ErrorCode.NOT_FOUND
        after = await haves(c.node, a_id, manifest, since=answer.seq)
        assert after.bits is not None
        assert held_numbers(after) == set()
        gated.gate.set()
        await finished


# -- the manifest from a partial source -----------------------------------------------------


def tampered(manifest: Manifest) -> Manifest:
    """The same ``manifest_hash`` over other content (one chunk hash changed)."""
    first = manifest.files[0]
    bad = first.model_copy(update={"chunk_hashes": [bytes(32), *first.chunk_hashes[1:]]})
    return manifest.model_copy(update={"files": [bad, *manifest.files[1:]]})


@dataclass
class Offerer:
    peer_id: str
    games: dict[str, GameSummary]
    connected: bool = True


class Answers:
    """A peer table whose peers answer ``GetManifest`` as the test says (a refusal: None)."""

    def __init__(
        self, answers: dict[str, Manifest | None], games: dict[str, dict[str, GameSummary]]
    ) -> None:
        self.answers, self.asked = answers, []
        self._peers = [Offerer(p, games.get(p, {})) for p in answers]

    def peers(self) -> list[Offerer]:
        return self._peers

    async def fetch_manifest(
        self, peer_id: str, game_id: str, manifest_hash: bytes | None = None
    ) -> Manifest:
        self.asked.append(peer_id)
        answer = self.answers[peer_id]
        if answer is None:
            raise ChunkRefused(ErrorCode.NOT_FOUND, "not here")
        return answer


@pytest.mark.asyncio
async def test_a_wrong_manifest_is_refused_and_the_next_peer_asked(tmp_path: Path) -> None:
    right = manifest_of(put_game(tmp_path / "new", game_files(4 * CHUNK)), GAME)
    other = manifest_of(write_game(tmp_path / "old" / GAME, {"x.eti": b"x"}, "0.9"), GAME)
    whole = GameSummary(id=GAME, name=GAME, version="0.9", manifest_hash=other.manifest_hash,
                        size=1)  # fmt: skip
    peers = Answers(
        {
            "forger": tampered(right),
            "other": other,
            "nothing": None,
            "older": other,
            "partial": right,
        },
        {"older": {GAME: whole}},  # serves 0.9 whole: asked after those that offer nothing
    )
    search = ManifestSearch()
    got = await version_manifest(peers, GAME, right.manifest_hash, search)
    assert got == right
    assert peers.asked == ["forger", "other", "nothing", "partial"]
    assert search.refused == {"forger", "other"}  # wrong manifests; "nothing" may have it later
    peers.asked.clear()
    assert await version_manifest(peers, GAME, right.manifest_hash, search) == right
    # The refused ones are not asked again; "older" (not reached on the first look) has its turn.
    assert peers.asked == ["older", "nothing", "partial"]
    # Bounded: at most MAX_MANIFEST_ASKS peers per look, the least recently asked first, so
    # over a few looks every peer gets its turn.
    many = Answers({f"p{i:02}": None for i in range(3 * MAX_MANIFEST_ASKS)}, {})
    search = ManifestSearch()
    for _ in range(3):
        assert await version_manifest(many, GAME, right.manifest_hash, search) is None
    assert len(many.asked) == 3 * MAX_MANIFEST_ASKS
    assert sorted(many.asked) == sorted(many.answers)  # each peer once


@pytest.mark.asyncio
async def test_a_resume_takes_the_manifest_from_a_partial_source_never_a_forged_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """b resumes a download of a version no connected peer offers whole: a (downloading it)
    hands out its manifest; c (fault: serves a forged manifest of it) is refused."""
    src = put_game(tmp_path / "src", game_files(size=8 * CHUNK))
    manifest = manifest_of(src, GAME)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(
            leecher(tmp_path / "a", [], name="a", directory=lambda _n: SourceSet())
        )
        c = await stack.enter_async_context(leecher(tmp_path / "c", [], name="c"))
        b = await stack.enter_async_context(
            leecher(tmp_path / "b", [a.node.listen, c.node.listen], name="b")
        )
        await wait_for(lambda: sum(p.connected for p in b.node.peers()) == 2)
        forged = []
        monkeypatch.setattr(c.node.swarm, "partial_manifest",
                            lambda _g, _h=None: forged.append(1) or tampered(manifest))  # fmt: skip
        wait = asyncio.ensure_future(wait_resume_offer(b.node, GAME, manifest.manifest_hash))
        stack.push_async_callback(asyncio.gather, wait, return_exceptions=True)
        stack.callback(wait.cancel)
        await wait_for(lambda: bool(forged))  # c was asked and answered; a had nothing yet
        assert not wait.done()
        gated, finished = await gated_download(a, src, manifest, serve=0)  # a downloads it
        got, summary = await asyncio.wait_for(wait, 10)
        assert (got, summary) == (manifest, None)
        assert len(forged) == 1  # refused once, never asked again
        gated.gate.set()
        await finished
