"""A hostile (or just hand-driven) client for the peer network, built from lanpeer_proto and
real sockets: raw bulk-path connections and the frames on them."""

from __future__ import annotations

import asyncio
import socket

import msgpack
from lanpeer_proto import codec
from lanpeer_proto.framing import encode_frame
from lanpeer_proto.handshake import bulk_proof
from lanpeer_proto.messages import BulkChallenge, BulkHello, Hello, Message
from lanpeer_proto.session import SessionTimers
from lanpeer_proto.version import PROTOCOL_MAJOR, PROTOCOL_MINOR

from lanpeer.net import handshake
from lanpeer.net.identity import Identity
from lanpeer.net.quic import QuicPeerConnection, QuicSettings, dial


async def recv_frame(sock: socket.socket, data: bytes = b"") -> tuple[bytes, bytes]:
    """One frame (after ``data`` already received) and whatever bytes came after it."""
    loop = asyncio.get_running_loop()
    while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
        piece = await loop.sock_recv(sock, 65536)
        if not piece:
            raise ConnectionError("EOF inside a frame")
        data += piece
    end = 4 + int.from_bytes(data[:4], "big")
    return data[4:end], data[end:]


async def send(sock: socket.socket, message: Message | bytes) -> None:
    raw = message if isinstance(message, bytes) else encode_frame(codec.encode(message))
    await asyncio.get_running_loop().sock_sendall(sock, raw)


async def bulk_connect(port: int, host: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    """A non-blocking TCP connection to a bulk port and the server's challenge nonce."""
    sock = socket.socket()
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
        frame, rest = await recv_frame(sock)
        assert rest == b""
        challenge = codec.decode(frame)
        assert isinstance(challenge, BulkChallenge)
    except BaseException:
        sock.close()
        raise
    return sock, challenge.nonce


def bulk_hello(secret: bytes, nonce: bytes, client_id: str, server_id: str) -> BulkHello:
    return BulkHello(peer_id=client_id, proof=bulk_proof(secret, nonce, client_id, server_id))


async def authenticated(listen: tuple[str, int], identity: Identity) -> QuicPeerConnection:
    """A QUIC connection to ``listen`` that ran the handshake as ``identity`` (no node behind
    it: the caller opens streams by hand)."""
    conn = await dial(*listen, QuicSettings(), 5.0)
    try:
        hello = Hello(peer_id=identity.peer_id, public_key=identity.public_key, name="hostile",
                      proto_major=PROTOCOL_MAJOR, proto_minor=PROTOCOL_MINOR, listen_port=1,
                      library_rev=0, library_digest=bytes(32), features=[])  # fmt: skip
        channel = handshake.client_channel(
            conn, conn.open_stream(), identity, hello, None, None, SessionTimers()
        )
        await handshake.wait_handshake(channel)
        conn.mark_authenticated()
    except BaseException:
        drop(conn)
        raise
    return conn


def drop(conn: QuicPeerConnection) -> None:
    conn.close_connection("test over")
    conn.force_close()


def raw_get_chunk(
    manifest_hash: bytes, path: str, offset: int = 0, length: int = 100, game_id: str = "quake"
) -> bytes:
    """A get_chunk frame built by hand, so fields the model would refuse can be sent."""
    raw = {"type": "get_chunk", "game_id": game_id, "manifest_hash": manifest_hash,
           "path": path, "offset": offset, "length": length}  # fmt: skip
    return encode_frame(msgpack.packb(raw, use_bin_type=True))
