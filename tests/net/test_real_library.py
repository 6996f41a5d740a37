"""The peer network over the real GameLibrary: sync, manifests, chunks, refusals, pushes."""

from __future__ import annotations

from pathlib import Path

import blake3
import pytest
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import Manifest

from lanpeer.library.samples import generate_game, write_catalog
from lanpeer.net.errors import ChunkRefused
from lanpeer.net.node import PeerNode
from tests.library.helpers import sample_library
from tests.net.conftest import running_node, wait_for


def _hashed(node: PeerNode, game_id: str) -> bool:
    return any(
        game_id in p.games and p.games[game_id].manifest_hash is not None for p in node.peers()
    )


async def _fetch_all(node: PeerNode, peer_id: str, manifest: Manifest, root: Path) -> None:
    for file in manifest.files:
        on_disk = (root / manifest.game_id / file.path).read_bytes()
        for index, digest in enumerate(file.chunk_hashes):
            offset = index * file.chunk_size
            length = min(file.chunk_size, file.size - offset)
            data = await node.fetch_chunk(
                peer_id, manifest.game_id, manifest.manifest_hash, file.path, offset, length
            )
            assert blake3.blake3(data).digest() == digest
            assert data == on_disk[offset : offset + length]


@pytest.mark.asyncio
@pytest.mark.parametrize("bulk", ["quic", "auto"])
async def test_real_library_sync_manifest_and_chunks(tmp_path: Path, bulk: str) -> None:
    async with (
        sample_library(tmp_path, "alpha", {"quake": 9 << 20}) as lib_a,
        running_node(tmp_path, "alpha", library=lib_a) as a,
        running_node(tmp_path, "beta", static=[a.listen], bulk=bulk) as b,
    ):
        await wait_for(b, lambda: _hashed(b, "quake"), within=20)
        manifest = await b.fetch_manifest(a.identity.peer_id, "quake")
        assert manifest == await lib_a.wait_manifest("quake")
        assert [s.peer_id for s in b.sources_for("quake", manifest.manifest_hash)] == [
            a.identity.peer_id
        ]
        await _fetch_all(b, a.identity.peer_id, manifest, lib_a.roots[0])


@pytest.mark.asyncio
async def test_real_library_refusals_keep_the_connection(tmp_path: Path) -> None:
    async with (
        sample_library(tmp_path, "alpha", {"quake": 1 << 20, "doom": 1 << 20}) as lib_a,
        running_node(tmp_path, "alpha", library=lib_a) as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
    ):
        await wait_for(b, lambda: _hashed(b, "quake") and _hashed(b, "doom"), within=20)
        peer = a.identity.peer_id
        manifest = await b.fetch_manifest(peer, "quake")
        file = manifest.files[0]
        h = manifest.manifest_hash
        bad = [
            (("quake", h, "local/save.dat", 0, 10), ErrorCode.BAD_PATH),
            (("quake", h, file.path, file.size, 10), ErrorCode.BAD_RANGE),
            (("quake", h, "missing.bin", 0, 10), ErrorCode.NOT_FOUND),
            (("quake", bytes(32), file.path, 0, 10), ErrorCode.STALE_MANIFEST),
            (("nosuchgame", h, file.path, 0, 10), ErrorCode.NOT_FOUND),
        ]
        for args, code in bad:
            with pytest.raises(ChunkRefused) as refused:
                await b.fetch_chunk(peer, *args)
            assert refused.value.wire_code is code, args
        with lib_a.operation("doom"):
            with pytest.raises(ChunkRefused) as refused:
                await b.fetch_manifest(peer, "doom")
            assert refused.value.wire_code is ErrorCode.NOT_FOUND  # busy: not advertised
        data = await b.fetch_chunk(peer, "quake", h, file.path, 0, 10)
        assert len(data) == 10


@pytest.mark.asyncio
async def test_new_game_is_pushed_to_connected_peer(tmp_path: Path) -> None:
    async with (
        sample_library(tmp_path, "alpha", {"quake": 1 << 20}) as lib_a,
        running_node(tmp_path, "alpha", library=lib_a) as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
    ):
        await wait_for(b, lambda: _hashed(b, "quake"), within=20)
        root = lib_a.roots[0]
        generate_game(root, "hexen", 1 << 20, seed=7, archives=1)
        write_catalog(root / "catalog.toml", ["quake", "hexen"])
        await lib_a.rescan()
        await wait_for(b, lambda: _hashed(b, "hexen"), within=20)
        assert b._sync.applied["delta"] >= 1
