"""The only aioquic glue: listener, dialer and connections, by composition.

Owns a ``QuicConnection`` per connection, its timer and transmit scheduling (fed
``time.monotonic()``: uvloop's loop.time() steps in 1 ms and makes pacing timers spin), the
UDP sockets (the listener routes datagrams by connection id itself), QUIC tuning, and the
pre-authentication bounds: deadline from the first packet, received bytes, unauthenticated
connections per host and in total. aioquic internals live in ``quic_compat`` only.
Never interprets messages: it moves frames and raw bytes; the session decides what they mean.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from aioquic._buffer import Buffer
from aioquic.quic import events
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.quic.packet import QuicPacketType, pull_quic_header
from cryptography import x509
from lanpeer_proto.version import ALPN

from lanpeer.net import quic_compat
from lanpeer.net.identity import Identity
from lanpeer.net.mtu import datagram_size_for
from lanpeer.net.streams import QuicStream, StreamClosed

__all__ = ["QuicListener", "QuicPeerConnection", "QuicSettings", "QuicStream", "StreamClosed"]

log = logging.getLogger(__name__)

#: Streams a peer may open before our session runs (see ``QuicPeerConnection.on_stream``);
#: the authentication deadline bounds how long they wait.
MAX_HELD_STREAMS = 32
#: What one held stream may buffer: a request frame (1 MiB cap) and its length prefix.
MAX_HELD_STREAM_BYTES = (1 << 20) + 16


@dataclass(frozen=True)
class QuicSettings:
    #: 4 MiB removed the receive-buffer drops measured at the 208 KiB default.
    socket_buffer: int = 4 << 20
    #: Per-stream receive window; aioquic doubles it when half is used.
    window: int = 64 << 20
    #: Initial connection-wide receive window, which bounds what aioquic buffers (gaps
    #: included) before authentication: twice ``pre_auth_bytes``, so it is not raised before
    #: the check below runs. aioquic doubles it as it is used, so a LAN ramps up in a few RTTs.
    connection_window: int = 2 << 20
    #: Bytes an unauthenticated connection may send (Hello, proof and a few early requests
    #: are a few KiB); more closes it.
    pre_auth_bytes: int = 1 << 20
    #: From the first packet to an authenticated session; the connection is closed after.
    auth_deadline: float = 10.0
    #: Dead peers are detected by the session's pings; QUIC closes after this much silence.
    idle_timeout: float = 30.0
    #: Unacknowledged bytes one stream may have in flight before write() waits.
    stream_credit: int = 8 << 20
    #: Unread bytes one stream may buffer: a chunk (<= 64 MiB) plus its header frame.
    max_stream_buffer: int = (64 << 20) + (1 << 20)
    #: Unauthenticated connections one host may hold: a same-host mesh of 12 daemons dials
    #: 11 at once; a flood from one address gets no more than this.
    max_unauthenticated_per_host: int = 16
    #: Unauthenticated connections in total: with ``pre_auth_bytes`` this bounds the memory
    #: strangers can pin to 64 x 2 MiB windows.
    max_unauthenticated: int = 64
    #: Connections in total (authenticated ones are peers of the party; a party is < 100).
    max_connections: int = 512
    #: Overrides the MTU-derived datagram size (benchmarks, tests).
    datagram_size: int | None = None


class _PeerStreamIds:
    """Which stream ids the peer has opened: QUIC does not order data across streams, so a
    lower id may arrive after a higher one and is still new. Ids above the low-water mark
    are bounded by the peer's stream limit (aioquic: 128 open bidirectional streams)."""

    def __init__(self, first: int) -> None:
        self._low = first  # every peer id below this was seen
        self._seen: set[int] = set()

    def is_new(self, stream_id: int) -> bool:
        return stream_id >= self._low and stream_id not in self._seen

    def add(self, stream_id: int) -> None:
        self._seen.add(stream_id)
        while self._low in self._seen:
            self._seen.remove(self._low)
            self._low += 4


class QuicPeerConnection:
    """One QUIC connection: owns its ``QuicConnection``, timer, transmits and streams."""

    def __init__(
        self,
        quic: QuicConnection,
        settings: QuicSettings,
        sendto: Callable[[bytes, NetworkAddress], None],
        remote: NetworkAddress,
    ) -> None:
        self._quic = quic
        self.settings = settings
        self._sendto = sendto
        self._loop = asyncio.get_running_loop()
        self.remote_address: tuple[str, int] = (_plain_host(str(remote[0])), int(remote[1]))
        self.authenticated = False
        self.created = time.monotonic()
        self.on_handshake: Callable[[QuicPeerConnection], None] | None = None
        self.on_connection_id: Callable[[QuicPeerConnection, bytes, bool], None] | None = None
        self._on_stream: Callable[[QuicStream], None] | None = None
        self._held: list[QuicStream] = []
        self._streams: dict[int, QuicStream] = {}
        is_client = quic.configuration.is_client
        self._peer_streams = _PeerStreamIds(1 if is_client else 0)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._transmit_handle: asyncio.Handle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self._ended = asyncio.Event()
        self._ended_callbacks: list[Callable[[QuicPeerConnection], None]] = []
        self._release: Callable[[], None] | None = None  # a dialled connection's own socket

    @property
    def on_stream(self) -> Callable[[QuicStream], None] | None:
        """Who gets each stream the peer opens; while None, new streams are held for it.

        The peer may open a request stream the moment its side of the handshake completes,
        before ours has read the last handshake message: dropping that stream would lose the
        request (and later bytes of it would look like a new stream), so it waits here.
        """
        return self._on_stream

    @on_stream.setter
    def on_stream(self, callback: Callable[[QuicStream], None] | None) -> None:
        self._on_stream = callback
        while self._held and self._on_stream is not None:
            self._on_stream(self._held.pop(0))

    @property
    def is_closed(self) -> bool:
        return self._ended.is_set()

    @property
    def is_closing(self) -> bool:
        """Closed, or closing: either side has sent CONNECTION_CLOSE (nothing more crosses)."""
        return self.is_closed or quic_compat.is_closing(self._quic)

    def peer_certificate(self) -> x509.Certificate | None:
        return quic_compat.peer_certificate(self._quic)

    def mark_authenticated(self) -> None:
        """The session proved the peer: pre-authentication bounds no longer apply."""
        self.authenticated = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def start_deadline(self, within: float) -> None:
        """Close the connection unless it is authenticated ``within`` seconds from now."""
        self._deadline = self._loop.call_later(within, self._deadline_passed, within)

    def _deadline_passed(self, within: float) -> None:
        self._deadline = None
        if not self.authenticated:
            log.info("closing QUIC connection from %s: not authenticated within %.0f s",
                     self.remote_address[0], within)  # fmt: skip
            self.close_connection("not authenticated in time")

    def open_stream(self) -> QuicStream:
        if self.is_closed:
            raise StreamClosed("connection closed")
        stream_id = self._quic.get_next_available_stream_id()
        # aioquic hands out the same id until something is sent on it: reserve it now (an
        # empty write creates the stream and sends nothing), so two opens never share one.
        self._quic.send_stream_data(stream_id, b"", end_stream=False)
        return self._new_stream(stream_id)

    def _new_stream(self, stream_id: int) -> QuicStream:
        stream = QuicStream(self, stream_id, max_buffer=self.settings.max_stream_buffer,
                            credit=self.settings.stream_credit)  # fmt: skip
        self._streams[stream_id] = stream
        return stream

    async def wait_handshake_done(self) -> None:
        """Until the TLS handshake completes; ConnectionError if the connection ends first.

        The future is ours and its failure is always retrieved, so a dial that timed out
        leaves nothing to fail unobserved later."""
        await asyncio.shield(self._connected)

    async def wait_ended(self) -> None:
        await self._ended.wait()

    def when_ended(self, callback: Callable[[QuicPeerConnection], None]) -> None:
        """Call ``callback(conn)`` once the connection has ended (every owner adds its own)."""
        self._ended_callbacks.append(callback)

    def force_close(self) -> None:
        """End now without QUIC's draining wait (after close, or at shutdown)."""
        self._cancel_timers()
        release, self._release = self._release, None
        if release is not None:
            release()
        if not self._ended.is_set():
            self._terminated("closed")

    def close_connection(self, reason: str = "") -> None:
        if not self.is_closed:
            self._quic.close(reason_phrase=reason[:200])
            self.transmit()  # now: a force_close() may follow at once

    # used by QuicStream -------------------------------------------------------
    def send(self, stream_id: int, data: bytes, end: bool) -> None:
        if self.is_closed:
            raise StreamClosed("connection closed")
        self._quic.send_stream_data(stream_id, data, end_stream=end)
        self._transmit_soon()

    def unacked(self, stream_id: int) -> int:
        return quic_compat.unacked_bytes(self._quic, stream_id)

    def abort_stream(self, stream_id: int, *, send: bool, receive: bool) -> None:
        if self.is_closed:
            return
        try:
            if send:
                self._quic.reset_stream(stream_id, 1)
            if receive:
                self._quic.stop_stream(stream_id, 1)
        except (ValueError, AssertionError):
            pass  # that direction was already finished
        self._transmit_soon()

    def forget(self, stream_id: int) -> None:
        self._streams.pop(stream_id, None)

    # driving the QuicConnection ------------------------------------------------
    def connect(self, addr: NetworkAddress) -> None:
        self._quic.connect(addr, now=time.monotonic())
        self.transmit()

    def datagram_received(self, data: bytes, addr: NetworkAddress) -> None:
        if self.is_closed:
            return
        self._quic.receive_datagram(data, addr, now=time.monotonic())
        self._process_events()
        if not self.authenticated and not self.is_closing:
            used = quic_compat.received_credit(self._quic)
            if used > self.settings.pre_auth_bytes:  # checked before a transmit can raise it
                log.info("closing QUIC connection from %s: %d bytes before authentication",
                         self.remote_address[0], used)  # fmt: skip
                self.close_connection("too much data before authentication")
        # One transmit per batch: the loop hands over every queued datagram before call_soon.
        self._transmit_soon()

    def _transmit_soon(self) -> None:
        if self._transmit_handle is None:
            self._transmit_handle = self._loop.call_soon(self.transmit)

    def transmit(self) -> None:
        self._transmit_handle = None
        if self.is_closed:
            return
        for data, addr in self._quic.datagrams_to_send(now=time.monotonic()):
            self._sendto(data, addr)
        timer_at = self._quic.get_timer()
        if self._timer is not None and self._timer_at != timer_at:
            self._timer.cancel()
            self._timer = None
        if self._timer is None and timer_at is not None:
            delay = max(0.0, timer_at - time.monotonic())
            self._timer = self._loop.call_later(delay, self._handle_timer)
        self._timer_at = timer_at
        for stream in list(self._streams.values()):
            stream.credit_changed()

    def _handle_timer(self) -> None:
        now = max(self._timer_at or 0.0, time.monotonic())
        self._timer = None
        self._timer_at = None
        self._quic.handle_timer(now=now)
        self._process_events()
        self.transmit()

    def _process_events(self) -> None:
        while (event := self._quic.next_event()) is not None:
            self._event(event)

    def _event(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            self._stream_data(event.stream_id, event.data, event.end_stream)
        elif isinstance(event, events.StreamReset | events.StopSendingReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.fail(f"stream reset by peer (code {event.error_code})")
        elif isinstance(event, events.HandshakeCompleted):
            if not self._connected.done():
                self._connected.set_result(None)
            if self.on_handshake is not None:
                self.on_handshake(self)
        elif isinstance(event, events.ConnectionIdIssued | events.ConnectionIdRetired):
            if self.on_connection_id is not None:
                issued = isinstance(event, events.ConnectionIdIssued)
                self.on_connection_id(self, event.connection_id, issued)
        elif isinstance(event, events.ConnectionTerminated):
            self._terminated(event.reason_phrase or f"code {event.error_code}")

    def _stream_data(self, stream_id: int, data: bytes, end: bool) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._accept_stream(stream_id)
            if stream is None:
                return  # late bytes for a stream we already finished
        stream.feed(data, end)
        if self._held and stream.buffered > MAX_HELD_STREAM_BYTES and stream in self._held:
            # Before the session runs a stream may carry one request frame, nothing bulkier.
            self._held.remove(stream)
            stream.abort("too much data before the session runs")

    def _accept_stream(self, stream_id: int) -> QuicStream | None:
        is_peer_bidi = stream_id % 4 == (1 if self._quic.configuration.is_client else 0)
        if not is_peer_bidi or not self._peer_streams.is_new(stream_id):
            return None
        self._peer_streams.add(stream_id)
        stream = self._new_stream(stream_id)
        if self._on_stream is not None:
            self._on_stream(stream)
        elif len(self._held) < MAX_HELD_STREAMS:
            self._held.append(stream)
        else:
            stream.abort("too many streams before the session runs")
            return None
        return stream

    def _cancel_timers(self) -> None:
        for handle in (self._timer, self._deadline, self._transmit_handle):
            if handle is not None:
                handle.cancel()
        self._timer = self._deadline = self._transmit_handle = None

    def _terminated(self, why: str) -> None:
        self._cancel_timers()
        self._held.clear()
        for stream in list(self._streams.values()):
            stream.fail(f"connection closed: {why}")
        self._streams.clear()
        if not self._connected.done():
            self._connected.set_exception(ConnectionError(f"connection closed: {why}"))
            self._connected.exception()  # retrieved: nobody may be waiting
        self._ended.set()
        for callback in self._ended_callbacks:
            callback(self)
        release, self._release = self._release, None
        if release is not None:
            release()


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
        refusal = self._refusal(_plain_host(str(addr[0])))
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
                              (host, port))  # fmt: skip
    conn._release = transport.close
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


def _plain_host(host: str) -> str:
    return host.removeprefix("::ffff:")
