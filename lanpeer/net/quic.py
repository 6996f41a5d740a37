"""The QUIC endpoints, the only place lanpeer opens UDP sockets for QUIC: ``QuicListener``
routes datagrams by connection id itself and admits new connections within the caps on
strangers (per host, in total, all connections); ``dial`` opens one connection from its own
socket. The QUIC configuration (ALPN, windows, no CA) is built here. What a connection does once
it exists is ``quic_connection``'s. The public face of the QUIC transport: the rest of lanpeer
imports its types from here.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable

from aioquic._buffer import Buffer
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.quic.packet import QuicPacketType, pull_quic_header
from lanpeer_proto.version import ALPN

from lanpeer.net.identity import Identity
from lanpeer.net.mtu import datagram_size_for
from lanpeer.net.quic_connection import QuicPeerConnection, QuicSettings, plain_host
from lanpeer.net.streams import QuicStream, StreamClosed

__all__ = [
    "QuicListener",
    "QuicPeerConnection",
    "QuicSettings",
    "QuicStream",
    "StreamClosed",
    "dial",
    "listen",
]

log = logging.getLogger(__name__)


def _configuration(is_client: bool, datagram: int, settings: QuicSettings) -> QuicConfiguration:
    return QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN],
        max_datagram_size=datagram,
        max_data=settings.connection_window,
        max_stream_data=settings.window,
        idle_timeout=settings.idle_timeout,
        # Identity is proven by peer_id, not by a CA: the session checks the certificate key.
        verify_mode=ssl.CERT_NONE,
    )


def _udp_socket(host: str, port: int, settings: QuicSettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            sock.setsockopt(socket.SOL_SOCKET, option, settings.socket_buffer)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Datagrams(asyncio.DatagramProtocol):
    """Hands each datagram of one UDP socket to ``receive`` (errors are ICMP noise)."""

    def __init__(self, receive: Callable[[bytes, NetworkAddress], None]) -> None:
        self.receive = receive

    def datagram_received(self, data: bytes, addr: NetworkAddress) -> None:
        self.receive(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class QuicListener:
    """The UDP listener: routes datagrams by connection id, creates connections within the
    unauthenticated caps, and hands each to ``on_connection`` when TLS completes."""

    def __init__(
        self, settings: QuicSettings, on_connection: Callable[[QuicPeerConnection], None]
    ) -> None:
        self._settings = settings
        self._on_connection = on_connection
        self._config: QuicConfiguration | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._by_cid: dict[bytes, QuicPeerConnection] = {}
        self.connections: set[QuicPeerConnection] = set()
        self.address: tuple[str, int] = ("", 0)
        self.refused = 0  # new connections dropped over a cap (for logs and tests)

    async def open(self, identity: Identity, host: str, port: int) -> None:
        datagram = datagram_size_for(host, self._settings.datagram_size)
        config = _configuration(False, datagram, self._settings)
        config.certificate = identity.certificate
        config.private_key = identity.private_key
        self._config = config
        sock = _udp_socket(host, port, self._settings)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Datagrams(self._datagram), sock=sock
        )
        self._transport = transport
        bound_host, bound_port = transport.get_extra_info("sockname")[:2]
        self.address = (bound_host, bound_port)

    def _datagram(self, data: bytes, addr: NetworkAddress) -> None:
        assert self._config is not None
        try:
            header = pull_quic_header(
                Buffer(data=data), host_cid_length=self._config.connection_id_length
            )
        except ValueError:
            return  # not QUIC
        conn = self._by_cid.get(header.destination_cid)
        if conn is None:
            if (
                header.packet_type != QuicPacketType.INITIAL
                or len(data) < SMALLEST_MAX_DATAGRAM_SIZE
                or header.version not in self._config.supported_versions
            ):
                return
            conn = self._accept(header.destination_cid, addr)
            if conn is None:
                return
        conn.datagram_received(data, addr)

    def _accept(self, original_cid: bytes, addr: NetworkAddress) -> QuicPeerConnection | None:
        assert self._config is not None
        assert self._transport is not None
        refusal = self._refusal(plain_host(str(addr[0])))
        if refusal is not None:
            # Dropped, not answered: an answer would cost a TLS handshake per flood packet.
            self.refused += 1
            log.debug("dropping a new QUIC connection from %s: %s", addr[0], refusal)
            return None
        quic = QuicConnection(
            configuration=self._config, original_destination_connection_id=original_cid
        )
        conn = QuicPeerConnection(quic, self._settings, self._transport.sendto, addr)
        conn.on_handshake = self._on_connection
        conn.on_connection_id = self._connection_id
        conn.when_ended(self._ended)
        conn.start_deadline(self._settings.auth_deadline)
        self.connections.add(conn)
        self._by_cid[original_cid] = conn
        self._by_cid[quic.host_cid] = conn
        return conn

    def _refusal(self, host: str) -> str | None:
        settings = self._settings
        if len(self.connections) >= settings.max_connections:
            return "over the connection cap"
        strangers = [c for c in self.connections if not c.authenticated and not c.is_closing]
        from_host = sum(1 for c in strangers if c.remote_address[0] == host)
        if from_host >= settings.max_unauthenticated_per_host:
            return "over the per-host cap of unauthenticated connections"
        if len(strangers) >= settings.max_unauthenticated:
            # Full: the oldest stranger makes room. An honest peer authenticates in a few
            # round trips, so a flood that cannot out-open that keeps nobody out.
            oldest = min(strangers, key=lambda c: c.created)
            oldest.close_connection("too many unauthenticated connections")
        return None

    def _connection_id(self, conn: QuicPeerConnection, cid: bytes, issued: bool) -> None:
        if issued:
            self._by_cid[cid] = conn
        elif self._by_cid.get(cid) is conn:
            del self._by_cid[cid]

    def _ended(self, conn: QuicPeerConnection) -> None:
        self.connections.discard(conn)
        for cid in [cid for cid, owner in self._by_cid.items() if owner is conn]:
            del self._by_cid[cid]

    def close(self) -> None:
        for conn in list(self.connections):
            conn.close_connection("shutting down")
        if self._transport is not None:
            self._transport.close()


async def listen(
    identity: Identity,
    host: str,
    port: int,
    settings: QuicSettings,
    on_connection: Callable[[QuicPeerConnection], None],
) -> QuicListener:
    listener = QuicListener(settings, on_connection)
    await listener.open(identity, host, port)
    return listener


async def dial(
    host: str, port: int, settings: QuicSettings, within: float, *, local_host: str | None = None
) -> QuicPeerConnection:
    """Connect and finish the TLS handshake; the caller checks the certificate's peer_id.

    ``local_host`` picks the source address (default: any)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)  # static peers may be names
    host = str(infos[0][4][0])
    config = _configuration(True, datagram_size_for(host, settings.datagram_size), settings)
    config.server_name = "lanpeer"
    sock = _udp_socket(local_host or ("::" if ":" in host else "0.0.0.0"), 0, settings)
    datagrams = _Datagrams(lambda data, addr: None)
    transport, _ = await loop.create_datagram_endpoint(lambda: datagrams, sock=sock)
    conn = QuicPeerConnection(QuicConnection(configuration=config), settings, transport.sendto,
                              (host, port), release=transport.close)  # fmt: skip
    datagrams.receive = conn.datagram_received
    try:
        async with asyncio.timeout(within):
            conn.connect((host, port))
            await conn.wait_handshake_done()
    except BaseException:
        conn.close_connection("handshake failed")
        conn.force_close()
        raise
    return conn
