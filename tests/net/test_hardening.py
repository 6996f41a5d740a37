"""Issue 11 on loopback: what a hostile peer could squat, flood or starve, one test a finding.

Hostile clients are built from lanpeer_proto and aioquic (tests/net/hostile.py) over real
sockets; daemons whose memory or descriptors are measured run in their own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

import pytest
from lanpeer_proto import codec
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.framing import encode_frame
from lanpeer_proto.messages import ChunkHeader, Error, LibrarySnapshot, LibrarySnapshotRequest

from lanpeer.net.fetching import bulk_token
from lanpeer.net.identity import Identity
from lanpeer.net.node import PeerNode
from lanpeer.net.quic import QuicSettings, dial
from lanpeer.net.session import PeerLink
from tests.net.conftest import poll_until, running_node, wait_for
from tests.net.dirlibrary import DirLibrary
from tests.net.hostile import (
    authenticated,
    bulk_connect,
    bulk_hello,
    drop,
    raw_get_chunk,
    recv_frame,
    send,
)


# 1 ---------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_a_request_stream_arriving_after_a_higher_one_is_answered(tmp_path: Path) -> None:
    """QUIC does not order data across streams: stream 8's request reaching the server before
    stream 4's (loss, reordering) must not make stream 4 look finished."""
    lib = DirLibrary(tmp_path / "a-games")
    lib.add_game("quake", {"quake.bin": b"q" * 100})
    async with running_node(tmp_path, "alpha", library=lib) as a:
        conn = await authenticated(a.listen, Identity.generate())
        try:
            early, late = conn.open_stream(), conn.open_stream()
            assert early.stream_id < late.stream_id
            request = encode_frame(codec.encode(LibrarySnapshotRequest()))
            await late.write(request, end=True)
            conn.transmit()  # the higher stream's datagram leaves first
            await early.write(request, end=True)
            async with asyncio.timeout(5):
                answers = [codec.decode(await s.read_frame(1 << 20)) for s in (late, early)]
            assert all(isinstance(answer, LibrarySnapshot) for answer in answers)
            assert all([g.id for g in answer.games] == ["quake"] for answer in answers)  # type: ignore[union-attr]
        finally:
            drop(conn)


# 4 ---------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_silent_connections_are_dropped_at_the_deadline_and_an_honest_peer_gets_in(
    tmp_path: Path,
) -> None:
    """Connections that finish TLS and never open a stream (QUIC pings would keep them alive
    forever) fill the per-host cap of strangers only until the deadline from their first packet."""
    settings = QuicSettings(auth_deadline=1.0, max_unauthenticated_per_host=4)
    async with running_node(tmp_path, "alpha", quic_settings=settings) as a:
        silent = [await dial(*a.listen, QuicSettings(), 5.0) for _ in range(4)]
        try:
            with pytest.raises(TimeoutError):  # the cap is full of silent strangers
                await dial(*a.listen, QuicSettings(), 0.5)
            async with asyncio.timeout(1.0 + 3.0):
                await asyncio.gather(*(conn.wait_ended() for conn in silent))
            async with running_node(tmp_path, "beta", static=[a.listen]) as b:
                await wait_for(b, lambda: any(p.connected for p in b.peers()), 10.0)
        finally:
            for conn in silent:
                drop(conn)


@pytest.mark.asyncio
async def test_data_that_can_never_be_delivered_does_not_keep_a_stranger_alive(
    tmp_path: Path,
) -> None:
    """A stream whose first bytes never come (a gap at offset 0) delivers nothing, so no
    stream is ever seen: the deadline from the first packet still drops the connection."""
    settings = QuicSettings(auth_deadline=1.0)
    async with running_node(tmp_path, "alpha", quic_settings=settings) as a:
        conn = await dial(*a.listen, QuicSettings(), 5.0)
        try:
            stream = conn.open_stream()
            await stream.write(bytes(1000))
            # aioquic test hook: drop bytes 0..100 from what is to be sent, so the server only
            # ever gets offsets 100..1000 (fails loudly if aioquic renames these internals).
            conn._quic._streams[stream.stream_id].sender._pending.subtract(0, 100)
            conn.transmit()
            async with asyncio.timeout(1.0 + 3.0):
                await conn.wait_ended()
        finally:
            drop(conn)


# 5 ---------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_bad_bulk_requests_get_the_quic_paths_typed_errors_and_the_connection_lives(
    tmp_path: Path,
) -> None:
    lib = DirLibrary(tmp_path / "a-games")
    manifest = lib.add_game("quake", {"quake.bin": os.urandom(5000)})
    h = manifest.manifest_hash
    bad = [
        raw_get_chunk(h, "../x"),
        raw_get_chunk(h, "/etc/passwd"),
        raw_get_chunk(h, "quake\x00.bin"),
        raw_get_chunk(h, "quake.bin", offset=-1),
        raw_get_chunk(h, "quake.bin", offset=6000),
        encode_frame(b"\xc1garbage"),
    ]
    async with (
        running_node(tmp_path, "alpha", library=lib) as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
    ):
        await wait_for(b, lambda: any("quake" in p.games for p in b.peers()))
        link = b._fetcher.link(a.identity.peer_id)
        token = await bulk_token(link)
        sock, nonce = await bulk_connect(token.port)
        with sock:
            await send(sock, bulk_hello(token.secret, nonce, b.identity.peer_id,
                                        a.identity.peer_id))  # fmt: skip
            for payload in bad:
                over_quic = await _quic_answer(link.conn, payload)
                await send(sock, payload)
                frame, rest = await asyncio.wait_for(recv_frame(sock), 5)
                assert rest == b""
                answer = codec.decode(frame)
                assert isinstance(answer, Error), payload
                assert answer.code is over_quic.code, (payload, answer, over_quic)
                assert answer.code in (ErrorCode.BAD_PATH, ErrorCode.BAD_RANGE,
                                       ErrorCode.BAD_MESSAGE)  # fmt: skip
            await send(sock, raw_get_chunk(h, "quake.bin", offset=10, length=90))  # still served
            frame, rest = await recv_frame(sock)
            assert isinstance(codec.decode(frame), ChunkHeader)
            loop = asyncio.get_running_loop()
            while len(rest) < 90:
                rest += await loop.sock_recv(sock, 4096)
            assert rest == (tmp_path / "a-games" / "quake" / "quake.bin").read_bytes()[10:100]


async def _quic_answer(conn: object, payload: bytes) -> Error:
    from lanpeer.net.quic import QuicPeerConnection

    assert isinstance(conn, QuicPeerConnection)
    stream = conn.open_stream()
    try:
        await stream.write(payload, end=True)
        answer = codec.decode(await stream.read_frame(1 << 20))
    finally:
        stream.close()
    assert isinstance(answer, Error)
    return answer


# 7 ---------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_library_records_are_capped_and_vanished_peers_go_first(tmp_path: Path) -> None:
    def library(name: str, games: int) -> DirLibrary:
        lib = DirLibrary(tmp_path / f"{name}-games")
        for n in range(games):
            lib.add_game(f"{name}-{n}", {"g.bin": b"g" * 10})
        return lib

    async with running_node(tmp_path, "alpha", max_library_records=5) as a:
        async with running_node(tmp_path, "beta", library=library("beta", 3),
                                static=[a.listen]) as b:  # fmt: skip
            await wait_for(a, lambda: sum(len(p.games) for p in a.peers()) == 3)
        await wait_for(a, lambda: not any(p.connected for p in a.peers()))
        beta = b.identity.peer_id
        async with running_node(tmp_path, "gamma", library=library("gamma", 3),
                                static=[a.listen]) as c:  # fmt: skip
            gamma = c.identity.peer_id
            await wait_for(a, lambda: any(len(p.games) == 3 and p.peer_id == gamma
                                          for p in a.peers()))  # fmt: skip
            copies = {p.peer_id: len(p.games) for p in a.peers()}
            assert copies == {beta: 0, gamma: 3}  # beta vanished: its copy made room
            assert a._table.library_records == 3
            async with running_node(tmp_path, "delta", library=library("delta", 6),
                                    static=[a.listen]) as d:  # fmt: skip
                await wait_for(a, lambda: any(p.peer_id == d.identity.peer_id and p.connected
                                              for p in a.peers()))  # fmt: skip
                await _wait_sync_gave_up(a, d.identity.peer_id)
                copies = {p.peer_id: len(p.games) for p in a.peers()}
                assert copies[d.identity.peer_id] == 0  # over the cap: refused whole
                assert copies[gamma] == 3  # a connected peer's copy is never evicted
                assert a._table.library_records <= 5


async def _wait_sync_gave_up(node: PeerNode, peer_id: str) -> None:
    await poll_until(lambda: peer_id not in node._sync._running, 10.0)


# 9 ---------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_twelve_daemons_on_one_address_full_mesh_one_connection_per_pair(
    tmp_path: Path,
) -> None:
    """Every daemon lists every other as a static peer (so each pair dials both ways): all
    are connected within 10 s over exactly one connection per pair."""
    async with contextlib.AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(running_node(tmp_path, f"n{i}"))
                 for i in range(12)]  # fmt: skip
        for node in nodes:
            for other in nodes:
                if other is not node:
                    node.add_static_peer(*other.listen)

        def meshed() -> bool:
            return all(
                sum(p.connected for p in node.peers()) == 11
                and sum(not c.is_closing for c in node._conns) == 11
                for node in nodes
            )

        await poll_until(meshed, 10.0)
        for node in nodes:
            for record in node._table.records():
                assert sum(s.is_open for s in record.sessions) == 1


# 10 --------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_no_library_sync_retry_in_a_fresh_mesh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first sync request of a new connection used to be reset (held during the handshake,
    then handed to a session whose task group was not running yet)."""
    caplog.set_level(logging.INFO, logger="lanpeer.net")
    async with contextlib.AsyncExitStack() as stack:
        nodes: list[PeerNode] = []
        for i in range(5):
            lib = DirLibrary(tmp_path / f"n{i}-games")
            lib.add_game(f"game{i}", {"g.bin": b"g" * 100})
            static = [n.listen for n in nodes]  # each pair wired one way
            nodes.append(await stack.enter_async_context(
                running_node(tmp_path, f"n{i}", library=lib, static=static)
            ))  # fmt: skip

        def synced() -> bool:
            return all(sum(len(p.games) for p in n.peers() if p.connected) == 4 for n in nodes)

        await poll_until(synced, 10.0)
    retries = [r.getMessage() for r in caplog.records if "library sync failed" in r.getMessage()]
    assert retries == []


@pytest.mark.asyncio
async def test_a_request_held_during_the_handshake_is_served_not_reset(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pins the ordering seen between processes: alpha's first sync request reaches beta in
    the datagram batch that completes beta's handshake, so it is held on beta's connection
    when beta's session starts. It must be answered, not reset (no retry on alpha)."""
    caplog.set_level(logging.INFO, logger="lanpeer.net")
    original_run = PeerLink.run

    async def run_once_a_stream_is_held(link: PeerLink) -> None:
        await poll_until(lambda: bool(link.conn._held), 5.0)
        await original_run(link)

    lib_b = DirLibrary(tmp_path / "b-games")
    lib_b.add_game("doom", {"doom.bin": b"d" * 100})
    async with running_node(tmp_path, "alpha") as a:
        monkeypatch.setattr(PeerLink, "run", run_once_a_stream_is_held)  # beta's dialled link
        async with running_node(tmp_path, "beta", library=lib_b, static=[a.listen]):
            await wait_for(a, lambda: any("doom" in p.games for p in a.peers()), 5.0)
    retries = [r.getMessage() for r in caplog.records if "library sync failed" in r.getMessage()]
    assert retries == []
