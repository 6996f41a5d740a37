"""Chunk bytes over QUIC and over the TCP bulk path, from a real file, equal to the source."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import blake3
import pytest
from lanpeer_proto import codec
from lanpeer_proto.messages import ChunkHeader, GetChunk

from lanpeer.net.fetching import bulk_token
from lanpeer.ratelimit import TokenBucket
from tests.net.conftest import running_node, wait_for
from tests.net.dirlibrary import CHUNK, DirLibrary
from tests.net.hostile import bulk_connect, bulk_hello, recv_frame, send


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


@pytest.mark.asyncio
async def test_bulk_connection_ends_with_the_quic_session(tmp_path: Path) -> None:
    lib = DirLibrary(tmp_path / "a-games")
    manifest = lib.add_game("quake", {"q.bin": b"q" * 5000})
    async with (
        running_node(tmp_path, "alpha", library=lib) as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
    ):
        await wait_for(b, lambda: any("quake" in p.games for p in b.peers()))
        link = b._fetcher.link(a.identity.peer_id)
        token = await bulk_token(link)
        loop = asyncio.get_running_loop()
        sock, nonce = await bulk_connect(token.port)
        with sock:
            hello = bulk_hello(token.secret, nonce, b.identity.peer_id, a.identity.peer_id)
            request = GetChunk(game_id="quake", manifest_hash=manifest.manifest_hash,
                               path="q.bin", offset=0, length=4)  # fmt: skip
            for message in (hello, request):
                await send(sock, message)
            frame, rest = await recv_frame(sock)
            header = codec.decode(frame)
            assert isinstance(header, ChunkHeader)
            link.conn.close_connection("test: session over")  # the QUIC session ends
            async with asyncio.timeout(5):
                while piece := await loop.sock_recv(sock, 65536):
                    rest += piece
            assert rest == b"qqqq"  # the answer in flight, then EOF: the server dropped us


@pytest.mark.asyncio
async def test_bulk_path_down_falls_back_to_quic(tmp_path: Path) -> None:
    lib = DirLibrary(tmp_path / "a-games")
    content = os.urandom(CHUNK + 10)
    manifest = lib.add_game("quake", {"q.bin": content})
    async with (
        running_node(tmp_path, "alpha", library=lib) as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
    ):
        await wait_for(b, lambda: any("quake" in p.games for p in b.peers()))
        assert a._bulk_server is not None
        a._bulk_server.close()  # as if a firewall dropped TCP: QUIC still works
        h = manifest.manifest_hash
        first = await b.fetch_chunk(a.identity.peer_id, "quake", h, "q.bin", 0, CHUNK)
        second = await b.fetch_chunk(a.identity.peer_id, "quake", h, "q.bin", CHUNK, 10)
        assert first + second == content
        assert not b._fetcher.uses_bulk(a.identity.peer_id)


@pytest.mark.asyncio
@pytest.mark.parametrize("bulk", ["quic", "auto"])
async def test_upload_limiter_paces_both_paths(tmp_path: Path, bulk: str) -> None:
    lib = DirLibrary(tmp_path / "a-games")
    manifest = lib.add_game("quake", {"q.bin": os.urandom(3 * CHUNK)})
    limiter = TokenBucket(4 * CHUNK, burst=CHUNK)  # 4 MiB/s after a 1 MiB burst
    async with (
        running_node(tmp_path, "alpha", library=lib, upload_limiter=limiter) as a,
        running_node(tmp_path, "beta", static=[a.listen], bulk=bulk) as b,
    ):
        await wait_for(b, lambda: any("quake" in p.games for p in b.peers()))
        started = time.monotonic()
        for index in range(3):
            await b.fetch_chunk(
                a.identity.peer_id, "quake", manifest.manifest_hash, "q.bin", index * CHUNK, CHUNK
            )
        assert time.monotonic() - started >= 0.45  # 2 MiB over the burst at 4 MiB/s
