"""The library behind net's serving code: what a peer asks for is what the manifest promises.

Checks the seam to ``lanpeer.net`` (``LibraryView``) with the real GameLibrary over a generated
sample game: manifest served, every chunk read through ``open_chunk`` hashes to the manifest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import blake3
import pytest
from lanpeer_proto.codec import decode, encode
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import GetChunk, GetManifest, LibraryDeltaRequest, Manifest

from lanpeer.library import CHUNK_SIZE, GameLibrary, verify_manifest
from lanpeer.library.samples import generate_game, write_catalog

serving = pytest.importorskip("lanpeer.net.serving")
OpenLibrary = Any


def _read_chunk(library: GameLibrary, request: GetChunk) -> bytes:
    chunk = serving.open_chunk(library, request)
    try:
        return os.pread(chunk.fd, chunk.length, chunk.offset)
    finally:
        chunk.close()


@pytest.mark.asyncio
async def test_every_served_chunk_matches_the_manifest(
    root: Path, open_library: OpenLibrary
) -> None:
    generate_game(root, "sample", 2 * CHUNK_SIZE + 12345, seed=3, archives=2)
    write_catalog(root / "catalog.toml", ["sample"])
    library: GameLibrary = await open_library([root])
    view: Any = library  # net's LibraryView protocol
    manifest = await serving.manifest_for(view, GetManifest(game_id="sample"))
    assert isinstance(manifest, Manifest)
    assert verify_manifest(manifest)
    assert decode(encode(manifest)) == manifest  # within the wire limits of lanpeer_proto
    for file in manifest.files:
        for index, digest in enumerate(file.chunk_hashes):
            offset = index * file.chunk_size
            request = GetChunk(
                game_id="sample",
                manifest_hash=manifest.manifest_hash,
                path=file.path,
                offset=offset,
                length=min(file.chunk_size, file.size - offset),
            )
            assert blake3.blake3(_read_chunk(library, request)).digest() == digest


@pytest.mark.asyncio
async def test_refusals_reach_net_as_wire_codes(root: Path, open_library: OpenLibrary) -> None:
    generate_game(root, "sample", 1000, seed=3, archives=1)
    write_catalog(root / "catalog.toml", ["sample"])
    library: GameLibrary = await open_library([root])
    manifest = await library.wait_manifest("sample")
    stale = GetChunk(
        game_id="sample", manifest_hash=b"\x02" * 32, path="data00.eti", offset=0, length=10
    )
    with pytest.raises(serving.ServeError) as refused:
        _read_chunk(library, stale)
    assert refused.value.code is ErrorCode.STALE_MANIFEST
    with library.operation("sample"):
        busy = stale.model_copy(update={"manifest_hash": manifest.manifest_hash})
        with pytest.raises(serving.ServeError) as refused:
            _read_chunk(library, busy)
        assert refused.value.code in (ErrorCode.BUSY, ErrorCode.NOT_FOUND)
    answer = serving.sync_answer(library, LibraryDeltaRequest(from_rev=0))
    assert answer.library_digest == library.library_digest
