"""The share's bounds and caches, in process: a real GameLibrary, real sockets, small limits.

Caps per address and in total, the head deadline against a trickled request (slowloris), the
stall deadline against a reader that stops, request-size limits, the shared upload cap, and the
CRC-32 of each file read once (then found in the index, even by a new server).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from lanpeer.library import GameLibrary
from lanpeer.library.samples import write_catalog
from lanpeer.share.server import ShareLimits, ShareServer
from tests.share.conftest import MIB, write_game

WAIT = 10.0  # bound of every wait below


@pytest.fixture
def games(tmp_path: Path) -> Path:
    root = tmp_path / "games"
    write_game(root, "tiny", {"a.bin": os.urandom(8 * MIB), "b.txt": b"bee"})
    write_catalog(root / "catalog.toml", ["tiny"])
    return root


@asynccontextmanager
async def _share(
    games: Path, state: Path, limiter: object = None, **limits: object
) -> AsyncIterator[tuple[GameLibrary, ShareServer]]:
    library = GameLibrary([games], state, watch=False)
    async with library:
        server = ShareServer(
            library, "127.0.0.1", 0, name="test", limiter=limiter,  # type: ignore[arg-type]
            limits=ShareLimits(**limits),  # type: ignore[arg-type]
        )  # fmt: skip
        async with server:
            yield library, server


async def _get(server: ShareServer, path: str, extra: bytes = b"") -> tuple[bytes, bytes]:
    """Status line and the whole body of one ``Connection: close`` GET."""
    reader, writer = await asyncio.open_connection(*server.address)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n".encode() + extra)
        writer.write(b"Connection: close\r\n\r\n")
        async with asyncio.timeout(WAIT):
            answer = await reader.read(-1)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], body


async def _stalled_download(server: ShareServer) -> asyncio.StreamWriter:
    """A GET of the ZIP whose client reads nothing: it holds a download slot."""
    _reader, writer = await _slow_reader(server)
    writer.write(b"GET /games/tiny.zip HTTP/1.1\r\nHost: t\r\n\r\n")
    await _until(lambda: bool(server.downloads()), "the download to start")
    return writer


async def _slow_reader(server: ShareServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection with a 4 KiB receive window: the server's sends stall once buffers fill."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, server.address)
    return await asyncio.open_connection(sock=sock, limit=4096)


async def _until(probe: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not probe():  # noqa: ASYNC110 - server state seen across a socket
            await asyncio.sleep(0.01)  # poll interval; the timeout bounds the loop
    assert probe(), what


@pytest.mark.asyncio
async def test_downloads_per_address_are_capped_with_a_503(games: Path, tmp_path: Path) -> None:
    async with _share(games, tmp_path / "state", downloads_per_address=1) as (_lib, server):
        stalled = await _stalled_download(server)
        status, body = await _get(server, "/games/tiny.zip")
        assert status == b"HTTP/1.1 503 Service Unavailable", body
        assert b"too many downloads" in body
        assert (await _get(server, "/"))[0] == b"HTTP/1.1 200 OK"  # pages are not downloads
        stalled.close()
        await _until(lambda: not server.downloads(), "the slot to be released")
        assert (await _get(server, "/games/tiny/files/b.txt")) == (b"HTTP/1.1 200 OK", b"bee")


@pytest.mark.asyncio
async def test_connections_over_the_cap_are_turned_away(games: Path, tmp_path: Path) -> None:
    async with _share(games, tmp_path / "state", max_connections=2) as (_lib, server):
        held = [await asyncio.open_connection(*server.address) for _ in range(2)]
        await _until(lambda: server._guard.open_count() == 2, "both connections admitted")
        reader, writer = await asyncio.open_connection(*server.address)
        async with asyncio.timeout(WAIT):
            refused = await reader.read(-1)  # answered at once, before any request
        writer.close()
        assert refused.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert server._guard.refused == 1
        for _reader, writer in held:
            writer.close()
        await _until(lambda: server._guard.open_count() == 0, "the connections to close")
        assert (await _get(server, "/"))[0] == b"HTTP/1.1 200 OK"


@pytest.mark.asyncio
async def test_a_trickled_request_head_is_cut_at_the_deadline(games: Path, tmp_path: Path) -> None:
    async with _share(games, tmp_path / "state", head_timeout=0.3) as (_lib, server):
        reader, writer = await asyncio.open_connection(*server.address)
        closed = asyncio.get_running_loop().create_task(reader.read(-1))
        async with asyncio.timeout(WAIT):
            for byte in b"GET / HTTP/1.1\r\nHost: slow\r\nX-Pad: " + b"a" * 1000:
                if closed.done():
                    break
                writer.write(bytes([byte]))
                await asyncio.sleep(0.02)  # the attacker's pace, not a wait for an event
            try:
                answer = await closed
            except ConnectionResetError:  # closed with our unread bytes in its buffer: RST
                answer = b""
        assert answer == b""  # closed without an answer, long before the head was complete
        writer.close()
        assert server._guard.open_count() == 0


@pytest.mark.asyncio
async def test_a_reader_that_stops_loses_its_slot(games: Path, tmp_path: Path) -> None:
    limits = {"stall_timeout": 0.3, "piece_size": 256 << 10}
    async with _share(games, tmp_path / "state", **limits) as (_lib, server):
        stalled = await _stalled_download(server)
        await _until(lambda: not server.downloads(), "the stalled download to be dropped")
        stalled.close()


@pytest.mark.asyncio
async def test_oversized_request_heads_are_refused(games: Path, tmp_path: Path) -> None:
    async with _share(games, tmp_path / "state") as (_lib, server):
        status, _ = await _get(server, "/", b"X-Big: " + b"b" * 9000 + b"\r\n")
        assert status.split()[1] in (b"400", b"431")
        status, _ = await _get(server, "/" + "a" * 9000)
        assert status.split()[1] in (b"400", b"414")
        many = b"".join(b"X-%d: 1\r\n" % i for i in range(100))
        status, _ = await _get(server, "/", many)
        assert status.split()[1] in (b"400", b"431")


class RecordingLimiter:
    """Records what the share asks the upload cap for (the daemon's TokenBucket's shape)."""

    def __init__(self) -> None:
        self.granted = 0

    async def wait_acquire(self, n: int) -> None:
        self.granted += n


@pytest.mark.asyncio
async def test_every_body_byte_passes_the_upload_cap(games: Path, tmp_path: Path) -> None:
    limiter = RecordingLimiter()
    async with _share(games, tmp_path / "state", limiter) as (_lib, server):
        status, body = await _get(server, "/games/tiny.zip")
        assert status == b"HTTP/1.1 200 OK"
        assert limiter.granted == len(body)


@pytest.mark.asyncio
async def test_crcs_are_read_once_then_come_from_the_index(games: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with _share(games, state) as (_lib, server):
        first = await _get(server, "/games/tiny.zip")
        second = await _get(server, "/games/tiny.zip", b"Range: bytes=10-\r\n")
        assert server._crcs.files_read == 3  # a.bin, b.txt, version.ini
        assert second[1] == first[1][10:]
    async with _share(games, state) as (_lib, server):  # a restarted daemon
        again = await _get(server, "/games/tiny.zip")
        assert again == first
        assert server._crcs.files_read == 0


@pytest.mark.asyncio
async def test_a_busy_game_gets_503_until_its_operation_ends(games: Path, tmp_path: Path) -> None:
    async with _share(games, tmp_path / "state") as (library, server):
        with library.operation("tiny"):
            status, body = await _get(server, "/games/tiny.zip")
            assert status == b"HTTP/1.1 503 Service Unavailable"
            assert b"busy" in body
        await library.rescan("tiny")
        assert (await _get(server, "/games/tiny/files/b.txt")) == (b"HTTP/1.1 200 OK", b"bee")


@pytest.mark.asyncio
async def test_crcs_are_computed_ahead_of_the_first_download(games: Path, tmp_path: Path) -> None:
    async with _share(games, tmp_path / "state") as (_library, server):
        ahead = asyncio.get_running_loop().create_task(server.run())
        try:
            await _until(lambda: server._crcs.files_read == 3, "the CRCs of all three files")
        finally:
            ahead.cancel()
        await _get(server, "/games/tiny.zip")
        assert server._crcs.files_read == 3  # the download found them all in the index


@pytest.mark.asyncio
async def test_a_file_rewritten_mid_body_cuts_the_connection(games: Path, tmp_path: Path) -> None:
    async with _share(games, tmp_path / "state", piece_size=256 << 10) as (_library, server):
        reader, writer = await _slow_reader(server)
        writer.write(b"GET /games/tiny/files/a.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        async with asyncio.timeout(WAIT):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            first = await reader.readexactly(1 << 20)
            with (games / "tiny" / "a.bin").open("r+b") as rewrite:  # in place: same inode
                rewrite.write(b"X" * 4096)
                os.utime(rewrite.fileno(), ns=(1, 1))
            rest = await reader.read(-1)  # until the server closes
        writer.close()
        assert len(first) + len(rest) < length  # cut short, never a silent mix of versions


@pytest.mark.asyncio
async def test_two_downloads_on_one_keep_alive_connection(games: Path, tmp_path: Path) -> None:
    async with _share(games, tmp_path / "state") as (_library, server):
        reader, writer = await asyncio.open_connection(*server.address)
        bodies = []
        async with asyncio.timeout(WAIT):
            for _ in range(2):
                writer.write(b"GET /games/tiny/files/b.txt HTTP/1.1\r\nHost: t\r\n\r\n")
                head = await reader.readuntil(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200 OK")
                bodies.append(await reader.readexactly(3))
        writer.close()
        assert bodies == [b"bee", b"bee"]


@pytest.mark.asyncio
async def test_total_downloads_are_capped_across_addresses(games: Path, tmp_path: Path) -> None:
    limits = {"max_downloads": 1, "downloads_per_address": 4}
    async with _share(games, tmp_path / "state", **limits) as (_lib, server):
        stalled = await _stalled_download(server)
        status, _ = await _get(server, "/games/tiny/files/b.txt")
        assert status == b"HTTP/1.1 503 Service Unavailable"
        stalled.close()


@pytest.mark.asyncio
async def test_file_bytes_go_out_with_os_sendfile(
    games: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent_by_sendfile = 0
    real_sendfile = os.sendfile

    def counting_sendfile(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        nonlocal sent_by_sendfile
        sent = real_sendfile(out_fd, in_fd, offset, count)
        sent_by_sendfile += sent
        return sent

    async with _share(games, tmp_path / "state") as (_lib, server):
        monkeypatch.setattr(os, "sendfile", counting_sendfile)  # a spy: the real call runs
        status, body = await _get(server, "/games/tiny.zip")
    assert status == b"HTTP/1.1 200 OK"
    files = sum(p.stat().st_size for p in (games / "tiny").rglob("*") if p.is_file())
    assert sent_by_sendfile == files  # every file byte, and only those (headers are small sends)
    assert len(body) > files
