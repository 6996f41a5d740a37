"""A hostile (or just hand-driven) client for the peer network, built from lanpeer_proto and
real sockets: raw bulk-path connections and the frames on them."""

from __future__ import annotations

import asyncio
import socket

from lanpeer_proto import codec
from lanpeer_proto.framing import encode_frame
from lanpeer_proto.handshake import bulk_proof
from lanpeer_proto.messages import BulkChallenge, BulkHello, Message


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
