"""Chunk bytes over QUIC and over the TCP bulk path, from a real file, equal to the source."""

from __future__ import annotations

import os
from pathlib import Path

import blake3
import pytest

from tests.net.conftest import running_node, wait_for
from tests.net.dirlibrary import CHUNK, DirLibrary


@pytest.mark.asyncio
@pytest.mark.parametrize("bulk", ["quic", "auto"])
async def test_fetch_manifest_and_chunks(tmp_path: Path, bulk: str) -> None:
    lib = DirLibrary(tmp_path / "a-games")
    content = os.urandom(3 * CHUNK + 12345)
    lib.add_game("quake", {"data/pak0.pak": content})
    async with (
        running_node(tmp_path, "alpha", library=lib) as a,
        running_node(tmp_path, "beta", static=[a.listen], bulk=bulk) as b,
    ):
        await wait_for(b, lambda: any("quake" in p.games for p in b.peers()))
        manifest = await b.fetch_manifest(a.identity.peer_id, "quake")
        (file,) = manifest.files
        got = bytearray()
        for index, digest in enumerate(file.chunk_hashes):
            offset = index * file.chunk_size
            length = min(file.chunk_size, file.size - offset)
            (source,) = b.sources_for("quake", manifest.manifest_hash)
            chunk = await source.fetch_chunk(
                "quake", manifest.manifest_hash, file.path, offset, length
            )
            assert blake3.blake3(chunk).digest() == digest
            got += chunk
        assert bytes(got) == content
        assert b._fetcher.uses_bulk(a.identity.peer_id) == (bulk == "auto")
