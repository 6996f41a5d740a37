"""Races between the handshake and the first requests / pushes of a new session.

The server side of a handshake is READY one round trip before the client: its first sync
request can reach the client before the client has read AuthOk. Such a stream must wait for
the client's session, not be dropped (a dropped request cost a whole request timeout, and the
rest of its bytes looked like a new stream).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from lanpeer_proto.messages import Hello

from lanpeer.net.identity import Identity
from lanpeer.net.quic import QuicPeerConnection, QuicSettings, QuicStream, dial, listen
from lanpeer.net.quic_connection import MAX_HELD_STREAM_BYTES, MAX_HELD_STREAMS
from tests.net.conftest import FAST, poll_until, running_node, wait_for
from tests.net.dirlibrary import DirLibrary


@asynccontextmanager
async def quic_pair(tmp: Path) -> AsyncIterator[tuple[QuicPeerConnection, QuicPeerConnection]]:
    """(server side, client side) of one real QUIC connection on loopback, no sessions.

    Its pre-authentication byte budget is raised so the held-stream bounds are what is tested.
    """
    settings = QuicSettings(pre_auth_bytes=4 << 20, connection_window=8 << 20)
    accepted: asyncio.Queue[QuicPeerConnection] = asyncio.Queue()
    identity = Identity.load_or_create(tmp / "server")
    listener = await listen(identity, "127.0.0.1", 0, settings, accepted.put_nowait)
    client = await dial(*listener.address, settings, 5.0)
    try:
        yield await asyncio.wait_for(accepted.get(), 5.0), client
    finally:
        client.close_connection("test over")
        client.force_close()
        listener.close()


@pytest.mark.asyncio
async def test_streams_opened_before_the_session_runs_wait_for_it(tmp_path: Path) -> None:
    async with quic_pair(tmp_path) as (server, client):
        # The server opens three request streams before the client has anyone to give them to.
        for n in range(3):
            stream = server.open_stream()
            await stream.write_frame(f"request {n}".encode(), end=True)
        await poll_until(lambda: len(client._held) == 3)
        got: list[QuicStream] = []
        client.on_stream = got.append  # the session starts: the held streams arrive in order
        assert [await s.read_frame(100) for s in got] == [b"request 0", b"request 1", b"request 2"]
        assert client._held == []


@pytest.mark.asyncio
async def test_held_streams_are_capped(tmp_path: Path) -> None:
    async with quic_pair(tmp_path) as (server, client):
        extra = []
        for _ in range(MAX_HELD_STREAMS + 3):
            stream = server.open_stream()
            await stream.write_frame(b"x", end=True)
            extra.append(stream)
        # The streams past the cap are reset by the client; the rest wait.
        await asyncio.wait_for(asyncio.gather(*(_reset(s) for s in extra[-3:])), 5.0)
        assert len(client._held) == MAX_HELD_STREAMS
        assert not client.is_closed


@pytest.mark.asyncio
async def test_a_held_stream_may_not_park_more_than_a_request(tmp_path: Path) -> None:
    async with quic_pair(tmp_path) as (server, client):
        small, bulky = server.open_stream(), server.open_stream()
        await small.write_frame(b"a request", end=True)
        await bulky.write(bytes(MAX_HELD_STREAM_BYTES + 1), end=True)
        await asyncio.wait_for(_reset(bulky), 5.0)  # reset by the client, not buffered
        got: list[QuicStream] = []
        client.on_stream = got.append
        assert [await s.read_frame(100) for s in got] == [b"a request"]
        assert not client.is_closed


@pytest.mark.asyncio
async def test_every_new_session_syncs_at_once(tmp_path: Path) -> None:
    """Ten fresh connections in a row: each side has the other's games well inside a request
    timeout (LIMITS.request_timeout is 10 s; a dropped first request would cost that)."""
    lib_a = DirLibrary(tmp_path / "a-games")
    lib_a.add_game("quake", {"quake.bin": b"q" * 1000})
    lib_b = DirLibrary(tmp_path / "b-games")
    lib_b.add_game("doom", {"doom.bin": b"d" * 1000})
    async with running_node(tmp_path, "alpha", library=lib_a) as a:
        for round_ in range(10):
            async with running_node(tmp_path, f"beta{round_}", library=lib_b,
                                    static=[a.listen]) as b:  # fmt: skip
                await wait_for(b, lambda: any("quake" in p.games for p in b.peers()), 3.0)
                await wait_for(
                    a,
                    lambda: any("doom" in p.games and p.connected for p in a.peers()),
                    3.0,
                )


@pytest.mark.asyncio
async def test_a_change_made_during_the_handshake_reaches_the_peer(tmp_path: Path) -> None:
    """beta holds alpha at rev 1 and reconnects; alpha's Hello says rev 1, but alpha changes
    to rev 2 right after building it, and its push of rev 2 finds no ready session (no
    debounce). beta's copy equals the Hello, so only alpha telling the new session helps."""
    lib_a = DirLibrary(tmp_path / "a-games")
    lib_a.add_game("quake", {"quake.bin": b"q" * 1000})
    eager = dataclasses.replace(FAST, push_debounce=0.0)
    async with (
        running_node(tmp_path, "alpha", library=lib_a, timings=eager) as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
    ):
        await wait_for(b, lambda: any("quake" in p.games for p in b.peers()), 5.0)
        built_hello = a._hello

        def hello_then_change() -> Hello:
            hello = built_hello()
            if lib_a.library_rev == 1:
                lib_a.add_game("doom", {"doom.bin": b"d" * 1000})
            return hello

        a._hello = hello_then_change  # type: ignore[method-assign]
        record = a._table.get(b.identity.peer_id)
        assert record is not None
        for link in record.sessions:
            link.conn.close_connection("test: reconnect")  # beta redials (static peer)
        await wait_for(b, lambda: any("doom" in p.games for p in b.peers()), 5.0)
        (pa,) = b.peers()
        assert (pa.library_rev, lib_a.library_rev) == (2, 2)


async def _reset(stream: QuicStream) -> None:
    with pytest.raises(ConnectionError):
        await stream.read_frame(100)


@pytest.mark.asyncio
async def test_a_peer_whose_rev_went_back_is_synced_again(tmp_path: Path) -> None:
    """alpha's index is reset (same identity, library_rev starts over below what beta holds):
    its next Hello, not the higher rev beta remembers, says what alpha has."""
    old = DirLibrary(tmp_path / "old-games")
    for game_id in ("quake", "doom", "hexen"):
        old.add_game(game_id, {f"{game_id}.bin": b"x" * 100})
    async with running_node(tmp_path, "beta") as b:
        async with running_node(tmp_path, "alpha", library=old) as a:
            b.add_static_peer(*a.listen)
            await wait_for(b, lambda: any("hexen" in p.games for p in b.peers()), 5.0)
        fresh = DirLibrary(tmp_path / "fresh-games")
        fresh.add_game("wolf3d", {"wolf3d.bin": b"w" * 100})  # rev 1 < 3
        async with running_node(tmp_path, "alpha", library=fresh) as a2:
            b.add_static_peer(*a2.listen)
            await wait_for(b, lambda: any("wolf3d" in p.games for p in b.peers()), 5.0)
            (pa,) = [p for p in b.peers() if p.connected]
            assert (pa.library_rev, sorted(pa.games)) == (1, ["wolf3d"])
