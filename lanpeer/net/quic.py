"""The only aioquic glue: listener, dialer, connections and streams with bounds and credit.

Owns QUIC tuning (datagram size from the interface MTU, socket buffers, LAN windows), the
monotonic clock fed to aioquic (uvloop's loop.time() steps in 1 ms and makes pacing timers
spin), per-stream receive bounds and app-level send credit (aioquic buffers without limit).
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
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import NetworkAddress, QuicConnection
from cryptography import x509
from lanpeer_proto.framing import HEADER_SIZE, FrameDecoder, encode_frame
from lanpeer_proto.version import ALPN

from lanpeer.net.identity import Identity
from lanpeer.net.mtu import datagram_size_for

log = logging.getLogger(__name__)

#: Streams a peer may open before our session runs (see ``QuicPeerConnection.on_stream``);
#: the handshake timeout bounds how long they wait.
MAX_HELD_STREAMS = 32
#: What one held stream may buffer: a request frame (1 MiB cap) and its length prefix.
MAX_HELD_STREAM_BYTES = (1 << 20) + 16


@dataclass(frozen=True)
class QuicSettings:
    #: 4 MiB removed the receive-buffer drops measured at the 208 KiB default.
    socket_buffer: int = 4 << 20
    #: The receiver doubles windows when half is used; 64 MiB just skips the ramp-up on a LAN.
    window: int = 64 << 20
    #: Dead peers are detected by the session's pings; QUIC closes after this much silence.
    idle_timeout: float = 30.0
    #: Unacknowledged bytes one stream may have in flight before write() waits.
    stream_credit: int = 8 << 20
    #: Unread bytes one stream may buffer: a chunk (<= 64 MiB) plus its header frame.
    max_stream_buffer: int = (64 << 20) + (1 << 20)
    #: Live connections one remote host may hold to our listener.
    max_connections_per_host: int = 8
    #: Overrides the MTU-derived datagram size (benchmarks, tests).
    datagram_size: int | None = None


class StreamClosed(ConnectionError):
    """The stream ended, was reset, or its connection closed before the expected bytes."""


class QuicStream:
    """One bidirectional stream: bounded receive buffer, frames, raw bytes, credit on send."""

    def __init__(self, conn: QuicPeerConnection, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self._buffer = bytearray()
        self._eof = False
        self._failure: str | None = None
        self._readable = asyncio.Event()
        self._wanted = 1  # bytes the waiting reader needs before waking is worth it
        self._writable = asyncio.Event()
        self._fin_sent = False

    # receiving ---------------------------------------------------------------
    def _feed(self, data: bytes, end: bool) -> None:
        self._buffer += data
        self._eof = self._eof or end
        if len(self._buffer) > self.conn.settings.max_stream_buffer:
            self._buffer.clear()
            self.abort("receive buffer over its limit")
        if len(self._buffer) >= self._wanted or self._eof:
            self._readable.set()  # wake the reader only when its read can complete

    def _fail(self, why: str) -> None:
        self._failure = self._failure or why
        self._readable.set()
        self._writable.set()

    async def _wait_readable(self, wanted: int = 1) -> None:
        if self._failure is not None:
            raise StreamClosed(self._failure)
        if self._eof:
            raise StreamClosed("stream ended early")
        self._wanted = wanted
        self._readable.clear()
        await self._readable.wait()

    async def read_frame(self, max_size: int) -> bytes:
        """One length-prefixed frame; raises RemoteProtocolError if it is over ``max_size``.

        Only the frame's own bytes go through the decoder: raw chunk bytes may follow it.
        """
        decoder = FrameDecoder(max_size)
        header = await self.read_exactly(HEADER_SIZE)
        decoder.feed(header)  # refuses an oversize length before reading the body
        decoder.feed(await self.read_exactly(int.from_bytes(header, "big")))
        frame = decoder.next_frame()
        assert frame is not None
        return frame

    async def read_exactly(self, count: int) -> bytes:
        while len(self._buffer) < count:
            await self._wait_readable(count)
        if len(self._buffer) == count:  # a whole chunk: one copy, and a fresh buffer
            data = bytes(self._buffer)
            self._buffer = bytearray()
            return data
        with memoryview(self._buffer) as view:
            data = view[:count].tobytes()
        del self._buffer[:count]
        return data

    async def wait_end(self) -> None:
        """Wait for the peer's FIN (any further bytes are discarded)."""
        while not self._eof:
            self._buffer.clear()
            await self._wait_readable()

    # sending -----------------------------------------------------------------
    async def write_frame(self, payload: bytes, *, end: bool = False) -> None:
        await self.write(encode_frame(payload), end=end)

    async def write(self, data: bytes, *, end: bool = False) -> None:
        """Queue ``data``; wait while this stream has more than its credit unacknowledged."""
        if self._failure is not None:
            raise StreamClosed(self._failure)
        self.conn.send(self.stream_id, data, end)
        self._fin_sent = self._fin_sent or end
        while self.conn.unacked(self.stream_id) > self.conn.settings.stream_credit:
            self._writable.clear()
            await self._writable.wait()
            if self._failure is not None:
                raise StreamClosed(self._failure)

    def _credit_changed(self) -> None:
        """Wake a waiting writer only once its stream is back under its credit."""
        if self._writable.is_set():
            return
        if self.conn.unacked(self.stream_id) <= self.conn.settings.stream_credit:
            self._writable.set()

    # ending ------------------------------------------------------------------
    def abort(self, why: str) -> None:
        """Reset both directions; only this stream is affected."""
        self._fail(why)
        self.conn.abort_stream(self.stream_id, send=not self._fin_sent, receive=not self._eof)
        self.conn.forget(self.stream_id)

    def close(self) -> None:
        """Finish our side (FIN) and stop receiving; safe to call twice."""
        if self._failure is None and not self._fin_sent:
            self.conn.send(self.stream_id, b"", True)
            self._fin_sent = True
        if self._failure is None and not self._eof:
            self.conn.abort_stream(self.stream_id, send=False, receive=True)
        self._fail("stream closed")
        self.conn.forget(self.stream_id)


class QuicPeerConnection(QuicConnectionProtocol):
    """aioquic's protocol fed time.monotonic(), routing stream events to ``QuicStream``."""

    def __init__(self, quic: QuicConnection, stream_handler: Any = None) -> None:
        super().__init__(quic)
        self.settings = QuicSettings()
        self.remote_address: tuple[str, int] = ("", 0)
        self._on_stream: Callable[[QuicStream], None] | None = None
        self._held: list[QuicStream] = []
        self.on_handshake: Callable[[QuicPeerConnection], None] | None = None
        self._ended_callbacks: list[Callable[[QuicPeerConnection], None]] = []
        self._streams: dict[int, QuicStream] = {}
        self._next_peer_stream = 1 if quic.configuration.is_client else 0
        self._ended = asyncio.Event()
        self._handshake_done = asyncio.Event()

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
        """Closed, or closing: either side has sent CONNECTION_CLOSE. aioquic reports the end
        only after the draining period (3 PTO), and a closing connection carries nothing more."""
        # aioquic has no public accessor; it sets _close_event when either side closes.
        return self.is_closed or self._quic._close_event is not None

    def peer_certificate(self) -> x509.Certificate | None:
        # aioquic has no public accessor; the TLS context keeps the validated leaf here.
        cert: x509.Certificate | None = self._quic.tls._peer_certificate
        return cert

    def open_stream(self) -> QuicStream:
        if self.is_closed:
            raise StreamClosed("connection closed")
        stream_id = self._quic.get_next_available_stream_id()
        # aioquic hands out the same id until something is sent on it: reserve it now (an
        # empty write creates the stream and sends nothing), so two opens never share one.
        self._quic.send_stream_data(stream_id, b"", end_stream=False)
        stream = QuicStream(self, stream_id)
        self._streams[stream_id] = stream
        return stream

    async def wait_ended(self) -> None:
        await self._ended.wait()

    async def wait_handshake_done(self) -> None:
        """Until the TLS handshake completes; ConnectionError if the connection ends first.

        Not aioquic's ``wait_connected``: its shielded waiter, left behind when a dial times
        out, later fails unobserved ("Future exception was never retrieved" in the log).
        """
        async with asyncio.TaskGroup() as group:
            done = group.create_task(self._handshake_done.wait())
            ended = group.create_task(self._ended.wait())
            await asyncio.wait([done, ended], return_when=asyncio.FIRST_COMPLETED)
            done.cancel()
            ended.cancel()
        if not self._handshake_done.is_set():
            raise ConnectionError("the connection closed during the handshake")

    def when_ended(self, callback: Callable[[QuicPeerConnection], None]) -> None:
        """Call ``callback(conn)`` once the connection has ended (every owner adds its own)."""
        self._ended_callbacks.append(callback)

    def force_close(self) -> None:
        """Drop a dialled connection's own UDP socket now (after close, or at shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._quic.configuration.is_client and self._transport is not None:
            self._transport.close()
        if not self._ended.is_set():
            self._terminated("closed")

    def close_connection(self, reason: str = "") -> None:
        if not self.is_closed:
            self.close(reason_phrase=reason[:200])

    # used by QuicStream -------------------------------------------------------
    def send(self, stream_id: int, data: bytes, end: bool) -> None:
        if self.is_closed:
            raise StreamClosed("connection closed")
        self._quic.send_stream_data(stream_id, data, end_stream=end)
        self._transmit_soon()

    def unacked(self, stream_id: int) -> int:
        # aioquic has no send backpressure API: read the sender's buffered-but-unacked span.
        stream = self._quic._streams.get(stream_id)
        if stream is None:
            return 0
        return stream.sender._buffer_stop - stream.sender._buffer_start

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

    # aioquic hooks, with the monotonic clock ----------------------------------
    def connect(self, addr: NetworkAddress, transmit: bool = True) -> None:
        self._quic.connect(addr, now=time.monotonic())
        self.transmit()

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        if not self.remote_address[0]:
            self.remote_address = (_plain_host(str(addr[0])), int(addr[1]))
        self._quic.receive_datagram(
            data if isinstance(data, bytes) else data.encode(), addr, now=time.monotonic()
        )
        self._process_events()
        # One transmit per batch: uvloop hands over every queued datagram before call_soon runs.
        self._transmit_soon()

    def transmit(self) -> None:
        self._transmit_task = None
        if self._transport is None or self._transport.is_closing():
            return
        for data, addr in self._quic.datagrams_to_send(now=time.monotonic()):
            self._transport.sendto(data, addr)
        timer_at = self._quic.get_timer()
        if self._timer is not None and self._timer_at != timer_at:
            self._timer.cancel()
            self._timer = None
        if self._timer is None and timer_at is not None:
            delay = max(0.0, timer_at - time.monotonic())
            self._timer = self._loop.call_later(delay, self._handle_timer)
        self._timer_at = timer_at
        self._wake_writers()

    def _handle_timer(self) -> None:
        now = max(self._timer_at or 0.0, time.monotonic())
        self._timer = None
        self._timer_at = None
        self._quic.handle_timer(now=now)
        self._process_events()
        self.transmit()

    def _wake_writers(self) -> None:
        for stream in list(self._streams.values()):
            stream._credit_changed()

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.StreamDataReceived):
            self._stream_data(event.stream_id, event.data, event.end_stream)
        elif isinstance(event, events.StreamReset | events.StopSendingReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream._fail(f"stream reset by peer (code {event.error_code})")
        elif isinstance(event, events.HandshakeCompleted):
            self._handshake_done.set()
            if self.on_handshake is not None:
                self.on_handshake(self)
        elif isinstance(event, events.ConnectionTerminated):
            self._terminated(event.reason_phrase or f"code {event.error_code}")

    def _stream_data(self, stream_id: int, data: bytes, end: bool) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            stream = self._accept_stream(stream_id)
            if stream is None:
                return  # late bytes for a stream we already finished
        stream._feed(data, end)
        if self._held and len(stream._buffer) > MAX_HELD_STREAM_BYTES and stream in self._held:
            # Before the session runs a stream may carry one request frame, nothing bulkier:
            # a peer that has not finished its handshake does not get to park data here.
            self._held.remove(stream)
            stream.abort("too much data before the session runs")

    def _accept_stream(self, stream_id: int) -> QuicStream | None:
        is_peer_bidi = stream_id % 4 == (1 if self._quic.configuration.is_client else 0)
        if not is_peer_bidi or stream_id < self._next_peer_stream:
            return None
        self._next_peer_stream = stream_id + 4
        stream = QuicStream(self, stream_id)
        self._streams[stream_id] = stream
        if self._on_stream is not None:
            self._on_stream(stream)
        elif len(self._held) < MAX_HELD_STREAMS:
            self._held.append(stream)
        else:
            stream.abort("too many streams before the session runs")
            return None
        return stream

    def _terminated(self, why: str) -> None:
        self._held.clear()
        for stream in list(self._streams.values()):
            stream._fail(f"connection closed: {why}")
        self._streams.clear()
        self._ended.set()
        for callback in self._ended_callbacks:
            callback(self)


def _configuration(is_client: bool, datagram: int, settings: QuicSettings) -> QuicConfiguration:
    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN],
        max_datagram_size=datagram,
        max_data=settings.window,
        max_stream_data=settings.window,
        idle_timeout=settings.idle_timeout,
        # Identity is proven by peer_id, not by a CA: the session checks the certificate key.
        verify_mode=ssl.CERT_NONE,
    )
    return config


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


class QuicListener:
    """The UDP listener; hands each connection to ``on_connection`` when TLS completes."""

    def __init__(
        self, settings: QuicSettings, on_connection: Callable[[QuicPeerConnection], None]
    ) -> None:
        self._settings = settings
        self._on_connection = on_connection
        self._server: QuicServer | None = None
        self.connections: set[QuicPeerConnection] = set()
        self.address: tuple[str, int] = ("", 0)

    async def open(self, identity: Identity, host: str, port: int) -> None:
        config = _configuration(
            False, datagram_size_for(host, self._settings.datagram_size), self._settings
        )
        config.certificate = identity.certificate
        config.private_key = identity.private_key
        sock = _udp_socket(host, port, self._settings)
        loop = asyncio.get_running_loop()
        transport, server = await loop.create_datagram_endpoint(
            lambda: QuicServer(configuration=config, create_protocol=self._create_protocol),
            sock=sock,
        )
        self._server = server
        bound_host, bound_port = transport.get_extra_info("sockname")[:2]
        self.address = (bound_host, bound_port)

    def _create_protocol(
        self, quic: QuicConnection, stream_handler: Any = None
    ) -> QuicPeerConnection:
        conn = QuicPeerConnection(quic)
        conn.settings = self._settings
        conn.on_handshake = self._admit
        return conn

    def _admit(self, conn: QuicPeerConnection) -> None:
        remote_host = conn.remote_address[0]
        same_host = [
            c for c in self.connections if c.remote_address[0] == remote_host and not c.is_closing
        ]
        if len(same_host) >= self._settings.max_connections_per_host:
            log.warning("refusing QUIC connection from %s: over the per-host cap", remote_host)
            conn.close_connection("too many connections")
            return
        self.connections.add(conn)
        conn.when_ended(self.connections.discard)
        self._on_connection(conn)

    def close(self) -> None:
        for conn in list(self.connections):
            conn.close_connection("shutting down")
        if self._server is not None:
            self._server.close()


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


async def dial(host: str, port: int, settings: QuicSettings, within: float) -> QuicPeerConnection:
    """Connect and finish the TLS handshake; the caller checks the certificate's peer_id."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)  # static peers may be names
    host = str(infos[0][4][0])
    config = _configuration(True, datagram_size_for(host, settings.datagram_size), settings)
    config.server_name = "lanpeer"
    sock = _udp_socket("::" if ":" in host else "0.0.0.0", 0, settings)
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: QuicPeerConnection(QuicConnection(configuration=config)), sock=sock
    )
    conn = protocol
    conn.settings = settings
    conn.remote_address = (host, port)
    try:
        async with asyncio.timeout(within):
            conn.connect((host, port))
            await conn.wait_handshake_done()
    except BaseException:
        conn.close_connection("handshake failed")
        transport.close()
        raise
    return conn


def _plain_host(host: str) -> str:
    return host.removeprefix("::ffff:")
