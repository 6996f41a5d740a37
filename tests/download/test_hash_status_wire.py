"""GetHashStatus over real QUIC between two in-process nodes on real libraries: the seeder says
how far its hashing of a game has got while it hashes, then that it is done; refusals are typed;
a peer without feature hash-status/1 is never asked; a download waiting on a seeder whose
hashing stopped fails naming it.

The seeder hashes no faster than ``LANPEER_FAULT_HASH_RATE`` (read by each hash as it starts).
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import HashStatus

from lanpeer.control.offers import wait_hashed_offer
from lanpeer.download.hash_wait import HashWaitLimits, SeederStalledError
from lanpeer.download.operations import OpKind
from lanpeer.library import GameLibrary
from lanpeer.library.scanner import HASH_RATE_ENV
from lanpeer.net.errors import ChunkRefused
from lanpeer.net.node import PeerNode
from tests.library.helpers import sample_library
from tests.net.conftest import running_node, wait_for
from tests.seams.recorders import Recorder

MIB = 1 << 20
CHUNK = 64 << 10


def library(
    tmp: Path, name: str, games: dict[str, int]
) -> AbstractAsyncContextManager[GameLibrary]:
    return sample_library(tmp, name, games, archives=1, chunk_size=CHUNK)


def _offered(node: PeerNode, game_id: str) -> bool:
    return any(game_id in p.games for p in node.peers())


@pytest.mark.asyncio
async def test_the_seeder_tells_how_far_it_has_hashed_then_that_it_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HASH_RATE_ENV, str(2 * MIB))  # 1 MiB: half a second of hashing
    async with (
        library(tmp_path, "seeder", {"slow-game": MIB}) as seeding,
        running_node(tmp_path, "seeder", library=seeding) as seeder,
        library(tmp_path, "leecher", {}) as leeching,
        running_node(tmp_path, "leecher", library=leeching, static=[seeder.listen]) as leecher,
    ):
        await wait_for(leecher, lambda: _offered(leecher, "slow-game"))
        peer = seeder.identity.peer_id
        answers: list[HashStatus] = []
        async with asyncio.timeout(20):
            while not answers or not answers[-1].hashed:  # each ask is one QUIC round trip
                status = await leecher.fetch_hash_status(peer, "slow-game")
                assert status is not None
                answers.append(status)
                await asyncio.sleep(0.05)  # the poll interval: nothing signals hash progress
        midway = {a.hashed_bytes for a in answers if not a.hashed and a.hashed_bytes > 0}
        assert len(midway) >= 2, answers  # it moved, and said so as it moved
        host = [a.host_hashed_bytes for a in answers]
        assert host == sorted(host)  # a restarted hash starts its game at 0; the host never
        done = answers[-1]
        assert done.hashed_bytes == done.total_bytes >= MIB
        assert done.host_hashed_bytes >= done.total_bytes
        with pytest.raises(ChunkRefused) as refused:
            await leecher.fetch_hash_status(peer, "no-such-game")
        assert refused.value.wire_code is ErrorCode.NOT_FOUND


@pytest.mark.asyncio
async def test_a_peer_without_the_feature_is_never_asked(tmp_path: Path) -> None:
    async with (
        running_node(tmp_path, "older") as older,  # a library that cannot say: no hash-status/1
        library(tmp_path, "leecher", {}) as leeching,
        running_node(tmp_path, "leecher", library=leeching, static=[older.listen]) as leecher,
    ):
        await wait_for(leecher, lambda: any(p.connected for p in leecher.peers()))
        assert await leecher.fetch_hash_status(older.identity.peer_id, "any-game") is None


@pytest.mark.asyncio
async def test_a_seeder_whose_hashing_stops_fails_the_wait_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HASH_RATE_ENV, "1")  # 1 byte/s: stuck after its first chunk
    limits = HashWaitLimits(poll=0.1, stall=1.0, gone=5.0)  # the daemon's: 1 s, 60 s, 15 s
    async with (
        library(tmp_path, "seeder", {"stuck-game": MIB}) as seeding,
        running_node(tmp_path, "seeder", library=seeding) as seeder,
        library(tmp_path, "leecher", {}) as leeching,
        running_node(tmp_path, "leecher", library=leeching, static=[seeder.listen]) as leecher,
    ):
        await wait_for(leecher, lambda: _offered(leecher, "stuck-game"))
        op = Recorder().op("stuck-game", OpKind.DOWNLOAD)
        with pytest.raises(SeederStalledError) as caught:
            async with asyncio.timeout(20):
                await wait_hashed_offer(leecher, "stuck-game", None, op, limits)
        short = seeder.identity.peer_id[:8]
        assert f"stopped hashing stuck-game (seeder ({short}) at " in str(caught.value)
        assert "no progress for 1 s" in str(caught.value)
        assert op.hashing is not None
        assert op.hashing.name == "seeder"
        assert 0 < op.hashing.hashed_bytes < op.hashing.total_bytes  # where it stopped
