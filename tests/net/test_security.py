"""SPEC §4 on loopback: proofs, party key, hostile requests, oversize frames."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import msgpack
import pytest
from lanpeer_proto import codec
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.framing import encode_frame
from lanpeer_proto.messages import ChunkHeader, Error, GetChunk, Hello
from lanpeer_proto.session import SessionTimers
from lanpeer_proto.version import PROTOCOL_MAJOR, PROTOCOL_MINOR

from lanpeer.net import handshake
from lanpeer.net.discovery import Advert
from lanpeer.net.errors import HandshakeRefused
from lanpeer.net.fetching import bulk_token
from lanpeer.net.identity import Identity
from lanpeer.net.node import PeerNode
from lanpeer.net.peers import PeerEventKind
from lanpeer.net.quic import QuicSettings, dial
from lanpeer.net.session import PeerLink
from tests.net.conftest import event_flag, running_node, wait_for
from tests.net.dirlibrary import DirLibrary
from tests.net.hostile import bulk_connect, bulk_hello, recv_frame, send


class _LogWatch(logging.Handler):
    """Refusals leave no peer-table event to await: wake on the log lines instead."""

    def __init__(self, text: str, count: int) -> None:
        super().__init__(logging.INFO)
        self.text, self.count = text, count
        self.lines: list[str] = []
        self.enough = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.lines.append(record.getMessage())
            if len(self.lines) >= self.count:
                self.enough.set()


@pytest.mark.asyncio
@pytest.mark.parametrize(("key_a", "key_b"), [("red", "blue"), ("red", None), (None, "blue")])
async def test_party_key_mismatch_refused_on_both_sides(
    tmp_path: Path, key_a: str | None, key_b: str | None
) -> None:
    watch = _LogWatch("party key", count=2)
    logger = logging.getLogger("lanpeer.net")
    logger.addHandler(watch)
    logger.setLevel(logging.INFO)
    try:
        async with (
            running_node(tmp_path, "alpha", party_key=key_a) as a,
            running_node(tmp_path, "beta", static=[a.listen], party_key=key_b) as b,
        ):
            await asyncio.wait_for(watch.enough.wait(), 10)
            assert any(m.startswith("refused peer") for m in watch.lines)  # the server side
            assert any(m.startswith("static peer") for m in watch.lines)  # the dialling side
            assert a.peers() == []
            assert b.peers() == []
    finally:
        logger.removeHandler(watch)


@pytest.mark.asyncio
async def test_matching_party_key_connects(tmp_path: Path) -> None:
    async with (
        running_node(tmp_path, "alpha", party_key="red") as a,
        running_node(tmp_path, "beta", static=[a.listen], party_key="red") as b,
    ):
        await wait_for(b, lambda: any(p.connected for p in b.peers()))


@pytest.mark.asyncio
async def test_forged_peer_id_refused(tmp_path: Path) -> None:
    victim, forger = Identity.generate(), Identity.generate()
    async with running_node(tmp_path, "alpha") as a:
        conn = await dial(*a.listen, QuicSettings(), 5.0)
        try:
            hello = Hello(
                peer_id=victim.peer_id,
                public_key=victim.public_key,
                name="mallory",
                proto_major=PROTOCOL_MAJOR,
                proto_minor=PROTOCOL_MINOR,
                listen_port=1,
                library_rev=0,
                library_digest=bytes(32),
                features=[],
            )
            # claims the victim's id and key, but signs with its own key
            channel = handshake.client_channel(
                conn, conn.open_stream(), forger, hello, None, None, SessionTimers()
            )
            with pytest.raises(HandshakeRefused) as refused:
                await handshake.wait_handshake(channel)
            assert refused.value.wire_code is ErrorCode.AUTH_FAILED
            await asyncio.wait_for(conn.wait_ended(), 5)
        finally:
            conn.close_connection()
            conn.force_close()
        assert a.peers() == []


@pytest.mark.asyncio
async def test_spoofed_advert_does_not_replace_the_real_peer(tmp_path: Path) -> None:
    async with (
        running_node(tmp_path, "alpha") as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
        running_node(tmp_path, "gamma") as c,
    ):
        await wait_for(a, lambda: any(p.connected for p in a.peers()))
        # an advert claiming beta's id but pointing at gamma's listener
        spoof = Advert(b.identity.peer_id, "beta", *c.listen, 0)
        a._dialler.advert_seen(spoof)  # ignored: connected
        with pytest.raises(HandshakeRefused) as refused:  # dialled anyway: gamma's cert
            await a._dial_and_run(*c.listen, expected_id=b.identity.peer_id)
        assert refused.value.wire_code is ErrorCode.AUTH_FAILED
        (pb,) = a.peers()
        assert pb.peer_id == b.identity.peer_id
        assert pb.address == b.listen
        assert pb.connected


def _session(node: PeerNode) -> PeerLink:
    (record,) = node._table.records()
    session = record.live_session()
    assert session is not None
    return session


async def _raw_request(session: PeerLink, payload: bytes) -> Error | object:
    stream = session.conn.open_stream()
    try:
        await stream.write(payload, end=True)
        return codec.decode(await stream.read_frame(1 << 20))
    finally:
        stream.close()


def _get_chunk(
    manifest_hash: bytes, path: str, offset: int = 0, length: int = 100, game_id: str = "quake"
) -> bytes:
    raw = {
        "type": "get_chunk",
        "game_id": game_id,
        "manifest_hash": manifest_hash,
        "path": path,
        "offset": offset,
        "length": length,
    }
    return encode_frame(msgpack.packb(raw, use_bin_type=True))


@pytest.mark.asyncio
async def test_hostile_requests_get_typed_errors_and_connection_keeps_serving(
    tmp_path: Path,
) -> None:
    lib = DirLibrary(tmp_path / "a-games")
    manifest = lib.add_game("quake", {"quake.bin": os.urandom(5000), "maps/e1m1.bsp": b"m" * 900})
    (lib.root / "quake" / "local").mkdir()
    (lib.root / "quake" / "local" / "save.dat").write_bytes(b"secret")
    os.symlink("/etc/passwd", lib.root / "quake" / "link.bin")
    lib.add_game("doom", {"doom.wad": b"d" * 100})
    lib.busy.add("doom")
    h = manifest.manifest_hash
    doom_hash = lib._games["doom"].manifest_hash
    assert doom_hash is not None
    cases = [
        (_get_chunk(h, "../etc/passwd"), ErrorCode.BAD_PATH),
        (_get_chunk(h, "/etc/passwd"), ErrorCode.BAD_PATH),
        (_get_chunk(h, "quake\x00.bin"), ErrorCode.BAD_PATH),
        (_get_chunk(h, "maps\\e1m1.bsp"), ErrorCode.BAD_PATH),
        (_get_chunk(h, "local/save.dat"), ErrorCode.BAD_PATH),
        (_get_chunk(h, "link.bin"), ErrorCode.NOT_FOUND),  # symlinks are never followed
        (_get_chunk(h, "quake.bin", offset=6000), ErrorCode.BAD_RANGE),
        (_get_chunk(h, "quake.bin", offset=4950, length=100), ErrorCode.BAD_RANGE),
        (_get_chunk(h, "nothing.bin"), ErrorCode.NOT_FOUND),
        (_get_chunk(h, "quake.bin", game_id="unknown"), ErrorCode.NOT_FOUND),
        (_get_chunk(doom_hash, "doom.wad", game_id="doom"), ErrorCode.BUSY),
        (_get_chunk(bytes(32), "quake.bin"), ErrorCode.STALE_MANIFEST),
        (encode_frame(b"\xc1garbage"), ErrorCode.BAD_MESSAGE),
        (encode_frame(msgpack.packb({"type": "no_such"})), ErrorCode.UNKNOWN_TYPE),
        (encode_frame(codec.encode(Error(code=ErrorCode.BUSY))), ErrorCode.UNEXPECTED),
        ((2 << 20).to_bytes(4, "big") + b"x" * 100, ErrorCode.BAD_FRAME),  # oversize frame
    ]
    async with (
        running_node(tmp_path, "alpha", library=lib) as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
    ):
        await wait_for(b, lambda: any("quake" in p.games for p in b.peers()))
        session = _session(b)
        for payload, code in cases:
            answer = await _raw_request(session, payload)
            assert isinstance(answer, Error), payload
            assert answer.code is code, (payload, answer)
        data = await b.fetch_chunk(a.identity.peer_id, "quake", h, "maps/e1m1.bsp", 0, 900)
        assert data == b"m" * 900
        assert session.is_open


@pytest.mark.asyncio
async def test_oversize_frame_on_control_stream_closes_only_that_connection(
    tmp_path: Path,
) -> None:
    async with (
        running_node(tmp_path, "alpha") as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
        running_node(tmp_path, "gamma", static=[a.listen]) as c,
    ):
        await wait_for(a, lambda: sum(p.connected for p in a.peers()) == 2)
        await wait_for(b, lambda: any(p.connected for p in b.peers()))
        await wait_for(c, lambda: any(p.connected for p in c.peers()))
        beta_down = event_flag(a, PeerEventKind.DOWN, b.identity.peer_id)
        gamma = _session(c)
        await _session(b)._channel.stream.write((64 << 20).to_bytes(4, "big"))
        await asyncio.wait_for(beta_down.wait(), 5)
        assert gamma.is_open
        assert _session(c) is gamma  # gamma's connection was not touched


@pytest.mark.asyncio
async def test_bulk_path_refuses_a_bad_proof(tmp_path: Path) -> None:
    async with running_node(tmp_path, "alpha") as a:
        port = a.bulk_port
        assert port is not None
        sock, nonce = await bulk_connect(port)
        with sock:
            await send(sock, bulk_hello(os.urandom(32), nonce, Identity.generate().peer_id,
                                        a.identity.peer_id))  # fmt: skip
            frame, _ = await asyncio.wait_for(recv_frame(sock), 5)
        answer = codec.decode(frame)
        assert isinstance(answer, Error)
        assert answer.code is ErrorCode.BAD_TOKEN


@pytest.mark.asyncio
async def test_a_replayed_bulk_hello_is_refused(tmp_path: Path) -> None:
    """SPEC §5b: a host that only sniffs the LAN sees a whole bulk login (with a party key
    set, too) and replays it on a new TCP connection: the fresh nonce makes it worthless."""
    lib = DirLibrary(tmp_path / "a-games")
    manifest = lib.add_game("quake", {"q.bin": b"q" * 5000})
    request = GetChunk(game_id="quake", manifest_hash=manifest.manifest_hash, path="q.bin",
                       offset=0, length=4)  # fmt: skip
    async with (
        running_node(tmp_path, "alpha", library=lib, party_key="red") as a,
        running_node(tmp_path, "beta", static=[a.listen], party_key="red") as b,
    ):
        await wait_for(b, lambda: any("quake" in p.games for p in b.peers()))
        token = await bulk_token(b._fetcher.link(a.identity.peer_id))
        sniffed = b""  # everything the honest downloader sends in clear
        sock, nonce = await bulk_connect(token.port)
        with sock:
            for message in (
                bulk_hello(token.secret, nonce, b.identity.peer_id, a.identity.peer_id),
                request,
            ):
                sniffed += encode_frame(codec.encode(message))
            await send(sock, sniffed)
            frame, _ = await recv_frame(sock)
            assert isinstance(codec.decode(frame), ChunkHeader)  # the honest login works
        assert token.secret not in sniffed  # the secret itself never crossed TCP
        replay, _nonce = await bulk_connect(token.port)
        with replay:
            await send(replay, sniffed)
            frame, _ = await asyncio.wait_for(recv_frame(replay), 5)
        answer = codec.decode(frame)
        assert isinstance(answer, Error)
        assert answer.code is ErrorCode.BAD_TOKEN


@pytest.mark.asyncio
async def test_per_peer_upload_cap_refuses_with_too_many(tmp_path: Path) -> None:
    lib = DirLibrary(tmp_path / "a-games")
    manifest = lib.add_game("quake", {"big.bin": os.urandom(24 << 20)})
    h = manifest.manifest_hash
    async with (
        running_node(tmp_path, "alpha", library=lib, max_uploads_per_peer=1) as a,
        running_node(tmp_path, "beta", static=[a.listen]) as b,
    ):
        await wait_for(b, lambda: any("quake" in p.games for p in b.peers()))
        session = _session(b)
        stalled = session.conn.open_stream()  # asks 24 MiB and never reads: holds the upload
        try:
            await stalled.write(_get_chunk(h, "big.bin", length=24 << 20), end=True)
            await stalled.read_frame(1 << 20)  # the ChunkHeader: the upload is now running
            answer = await _raw_request(session, _get_chunk(h, "big.bin", length=10))
            assert isinstance(answer, Error)
            assert answer.code is ErrorCode.TOO_MANY
        finally:
            stalled.close()
        assert session.is_open


@pytest.mark.asyncio
async def test_other_major_version_refused(tmp_path: Path) -> None:
    me = Identity.generate()
    async with running_node(tmp_path, "alpha") as a:
        conn = await dial(*a.listen, QuicSettings(), 5.0)
        try:
            hello = Hello(peer_id=me.peer_id, public_key=me.public_key, name="future",
                          proto_major=PROTOCOL_MAJOR + 1, proto_minor=0, listen_port=1,
                          library_rev=0, library_digest=bytes(32), features=[])  # fmt: skip
            channel = handshake.client_channel(
                conn, conn.open_stream(), me, hello, None, None, SessionTimers()
            )
            with pytest.raises(HandshakeRefused) as refused:
                await handshake.wait_handshake(channel)
            assert refused.value.wire_code is ErrorCode.UNSUPPORTED_VERSION
        finally:
            conn.close_connection()
            conn.force_close()
        assert a.peers() == []
