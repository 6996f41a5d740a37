"""One QUIC connection, by composition: ``QuicPeerConnection`` owns a ``QuicConnection``, its
timer and its transmit scheduling (fed ``time.monotonic()``: uvloop's loop.time() steps in 1 ms
and makes pacing timers spin), its streams, and the per-connection pre-authentication bounds
(deadline, received bytes, streams held before the session runs). ``QuicSettings`` holds every
QUIC limit. Never touches a socket (it is handed ``sendto``) and never interprets messages: it
moves frames and raw bytes; the session decides what they mean. aioquic internals live in
``quic_compat`` only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aioquic.quic import events
from aioquic.quic.connection import NetworkAddress, QuicConnection
from cryptography import x509

from lanpeer.net import quic_compat
from lanpeer.net.streams import QuicStream, StreamClosed

__all__ = ["MAX_HELD_STREAMS", "MAX_HELD_STREAM_BYTES", "QuicPeerConnection", "QuicSettings"]

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
        *,
        release: Callable[[], None] | None = None,
    ) -> None:
        self._quic = quic
        self.settings = settings
        self._sendto = sendto
        self._loop = asyncio.get_running_loop()
        self.remote_address: tuple[str, int] = (plain_host(str(remote[0])), int(remote[1]))
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
        self._release = release  # a dialled connection's own socket, closed when it ends

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

    @property
    def rtt(self) -> float | None:
        """Smoothed round-trip time in seconds; None until the first acknowledgement."""
        return quic_compat.smoothed_rtt(self._quic)

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


def plain_host(host: str) -> str:
    """An IPv4 peer's address as IPv4 (a dual-stack socket reports it as ``::ffff:a.b.c.d``)."""
    return host.removeprefix("::ffff:")
