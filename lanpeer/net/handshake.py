"""Glue that drives the sans-IO ``lanpeer_proto.session.PeerSession`` over a QUIC control stream.

Owns the Ed25519 callables injected into the session (sign our transcript, verify the client's
signature, match the server's HelloAck to its TLS certificate), moving the session's messages in
and out of control-stream frames, arming its timer, and the handshake phase. Never decides a
protocol rule itself: the session's transition table does; a refusal raises ``HandshakeRefused``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from lanpeer_proto import codec
from lanpeer_proto.codec import UnknownMessageType
from lanpeer_proto.errors import ErrorCode, RemoteProtocolError
from lanpeer_proto.framing import DEFAULT_MAX_FRAME_SIZE
from lanpeer_proto.messages import Hello, HelloAck, Message
from lanpeer_proto.session import (
    HandshakeComplete,
    PeerSession,
    SessionClosed,
    SessionEvent,
    SessionFailed,
    SessionTimers,
    Step,
)

from lanpeer.net.errors import DialledSelf, HandshakeRefused
from lanpeer.net.identity import Identity, peer_id_of_certificate, verify_signature
from lanpeer.net.quic import QuicPeerConnection, QuicStream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteFacts:
    """What the handshake proved and announced about the other side."""

    peer_id: str
    name: str
    proto_ver: str
    listen_port: int
    library_rev: int
    library_digest: bytes
    shared_features: frozenset[str]


def _facts(done: HandshakeComplete) -> RemoteFacts:
    remote = done.remote
    return RemoteFacts(
        peer_id=remote.peer_id,
        name=remote.name,
        proto_ver=f"{remote.proto_major}.{remote.proto_minor}",
        listen_port=remote.listen_port,
        library_rev=remote.library_rev,
        library_digest=remote.library_digest,
        shared_features=done.shared_features,
    )


class ControlChannel:
    """The control stream of one connection, carrying one sans-IO session's messages.

    The session state machine is private: callers use the named operations below, so every
    transition goes through this channel and is applied (sent) in order.
    """

    def __init__(self, stream: QuicStream, machine: PeerSession) -> None:
        self.stream = stream
        self._machine = machine

    @property
    def sent_library_digest(self) -> bytes:
        """The library digest our own Hello announced on this connection."""
        return self._machine.local.library_digest

    @property
    def last_seen(self) -> float:
        """time.monotonic() of the last thing received from the peer (0.0: nothing yet)."""
        return self._machine.last_seen or 0.0

    def note_activity(self) -> None:
        """Something arrived outside the control stream (a request, an answer): not stale.

        Raises ``LocalProtocolError`` before the session started."""
        self._machine.note_activity(time.monotonic())

    async def send(self, message: Message) -> None:
        """Send a message on the control stream; ``LocalProtocolError`` when not READY."""
        await self._apply(self._machine.send(message))

    async def close(self, reason: str) -> None:
        """Say Goodbye and move the session to closing."""
        await self._apply(self._machine.close(reason, time.monotonic()))

    async def start(self) -> tuple[SessionEvent, ...]:
        """Start the session (the client sends its Hello); its first events."""
        return await self._apply(self._machine.start(time.monotonic()))

    async def wait_next_events(self) -> tuple[SessionEvent, ...]:
        """The next events of the handshake: a frame received, or the session's deadline."""
        deadline = self._machine.get_timer()
        if deadline is None:
            return await self.receive()
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                return await self.receive()
        except TimeoutError:
            return await self._apply(self._machine.handle_timer(time.monotonic()))

    async def _apply(self, step: Step) -> tuple[SessionEvent, ...]:
        """Send what the session asked to send, in order; return its events."""
        for message in step.send:
            await self.stream.write_frame(codec.encode(message))
        return step.events

    async def receive(self) -> tuple[SessionEvent, ...]:
        """Read one control frame and feed it to the session."""
        try:
            message = codec.decode(await self.stream.read_frame(DEFAULT_MAX_FRAME_SIZE))
        except UnknownMessageType as exc:
            log.info("ignoring a control message of unknown type %r", exc.type_name)
            return await self._apply(self._machine.receive_unknown(time.monotonic()))
        except RemoteProtocolError as exc:
            return await self._apply(self._machine.fail(exc, time.monotonic()))
        return await self._apply(self._machine.receive(message, time.monotonic()))

    async def wait_timer(self) -> tuple[SessionEvent, ...]:
        """Sleep until the session's deadline (pings, stale, handshake), then let it act."""
        deadline = self._machine.get_timer()
        if deadline is None:
            await asyncio.Event().wait()  # no deadline in this state: wait to be cancelled
        else:
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        return await self._apply(self._machine.handle_timer(time.monotonic()))


def server_channel(
    stream: QuicStream,
    hello: Hello,
    party_key: str | None,
    bulk_port: int | None,
    timers: SessionTimers,
) -> ControlChannel:
    machine = PeerSession.server(
        hello, verify_client=_verify_client, party_key=party_key, bulk_port=bulk_port,
        timers=timers,
    )  # fmt: skip
    return ControlChannel(stream, machine)


def client_channel(
    conn: QuicPeerConnection,
    stream: QuicStream,
    identity: Identity,
    hello: Hello,
    party_key: str | None,
    expected_id: str | None,
    timers: SessionTimers,
) -> ControlChannel:
    """Check the server's TLS certificate first: it is what proves the server's peer_id."""
    cert = conn.peer_certificate()
    cert_id = peer_id_of_certificate(cert) if cert is not None else None
    if cert_id == identity.peer_id:
        raise DialledSelf(ErrorCode.AUTH_FAILED, "the dialled address is this very peer")
    if cert_id is None or (expected_id is not None and cert_id != expected_id):
        raise HandshakeRefused(
            ErrorCode.AUTH_FAILED, f"certificate proves {cert_id}, expected {expected_id}"
        )

    def verify_server(ack: HelloAck) -> bool:
        return ack.peer_id == cert_id

    machine = PeerSession.client(
        hello, sign=identity.sign, verify_server=verify_server, party_key=party_key, timers=timers
    )
    return ControlChannel(stream, machine)


def _verify_client(hello: Hello, transcript: bytes, signature: bytes) -> bool:
    return verify_signature(hello.public_key, signature, transcript)


async def wait_handshake(channel: ControlChannel) -> tuple[RemoteFacts, int | None]:
    """Run the handshake to READY; returns the peer's facts and its bulk port (client side)."""
    events = await channel.start()
    while True:
        for event in events:
            if isinstance(event, HandshakeComplete):
                remote = event.remote
                bulk_port = remote.bulk_port if isinstance(remote, HelloAck) else None
                return _facts(event), bulk_port
            if isinstance(event, SessionFailed):
                raise HandshakeRefused(event.code, event.reason)
            if isinstance(event, SessionClosed):
                raise HandshakeRefused(ErrorCode.UNEXPECTED, event.reason)
        events = await channel.wait_next_events()
