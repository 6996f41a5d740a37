"""The peer session: handshake and liveness of one connection, as a transition table.

Owns the handshake (Hello -> HelloAck -> AuthProof -> AuthOk), the party-key check,
the handshake deadline, idle pings and the stale timeout. Sans-IO: never touches
sockets or the clock (time is an argument); never does Ed25519 (the glue injects it).
Library, manifest and chunk messages only pass through: the glue owns their meaning.

Use (glue side)::

    session = PeerSession.client(my_hello, sign=key.sign, verify_server=cert_matches,
                                 party_key=key_or_None)
    session = PeerSession.server(my_hello, verify_client=ed25519_ok, party_key=...,
                                 bulk_port=port_or_None)
    step = session.start(now)            # client: step.send == (Hello,); server: nothing
    step = session.receive(message, now)  # every message decoded from the control stream
    step = session.handle_timer(now)      # when now >= session.get_timer()
    step = session.send(message)          # library/manifest/chunk messages, READY only
    step = session.close("shutting down", now)  # Goodbye, then CLOSING
    step = session.connection_lost(now)   # the transport is gone

Every call returns a ``Step``: ``send`` = messages to encode and send, in order;
``events`` = ``HandshakeComplete`` (peer facts, shared features), ``MessageReceived``
(a READY-state message the session does not own, including Error), ``SessionClosed``
or ``SessionFailed`` (code, reason, by_peer). After every call, (re)arm one timer at
``get_timer()``; None means none. ``session.last_seen`` is when anything last arrived;
call ``note_activity(now)`` for data on other streams of the same connection.

Injected callables (must return a bool, never raise on bad input):
``sign(transcript) -> 64-byte Ed25519 signature``;
``verify_client(hello, transcript, signature)``: Ed25519 verify with ``hello.public_key``
(the session has already checked ``hello.peer_id == peer_id_for(hello.public_key)``);
``verify_server(hello_ack)``: ``hello_ack.peer_id`` matches the server's TLS certificate.
The server's nonce comes from ``secrets`` unless one is passed (tests).

Decode failures on the control stream: ``codec.UnknownMessageType`` -> log it and call
``receive_unknown(now)`` (compatibility rule: ignored, yet it proves the peer is alive);
any other ``RemoteProtocolError`` -> ``fail(exc, now)``, which sends Error and ends the
session. A refusal (version, proof, party key, unexpected message, timeout) sends
``Error(code, reason)`` and moves to ERROR, which is permanent; the glue then closes the
transport, as it does on CLOSED.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from lanpeer_proto.errors import ErrorCode, LocalProtocolError, ProtocolError
from lanpeer_proto.handshake import Role, handshake_transcript, party_mac, peer_id_for
from lanpeer_proto.messages import (
    AuthOk,
    AuthProof,
    Error,
    Goodbye,
    Hello,
    HelloAck,
    Message,
    Ping,
    Pong,
)
from lanpeer_proto.session_events import HandshakeComplete as HandshakeComplete
from lanpeer_proto.session_events import MessageReceived as MessageReceived
from lanpeer_proto.session_events import SessionClosed as SessionClosed
from lanpeer_proto.session_events import SessionEvent as SessionEvent
from lanpeer_proto.session_events import SessionFailed as SessionFailed
from lanpeer_proto.session_events import SessionTimers as SessionTimers
from lanpeer_proto.session_events import Step as Step
from lanpeer_proto.version import PROTOCOL_MAJOR, PROTOCOL_MINOR, is_compatible


class State(StrEnum):
    AWAITING_HELLO = "awaiting_hello"  # server: wants Hello; client: sent Hello, wants HelloAck
    AUTHENTICATING = "authenticating"  # server: wants AuthProof; client: wants AuthOk
    READY = "ready"
    CLOSING = "closing"  # we sent Goodbye; waiting for the transport to end
    CLOSED = "closed"
    ERROR = "error"  # permanent


#: Row key "any other message type" in the table.
ANY: Final = "*"
_HANDSHAKE_TYPES = ("hello", "hello_ack", "auth_proof", "auth_ok")


@dataclass(frozen=True)
class Transition:
    action: str  # method ``_do_<action>``; it may refuse, which leads to ERROR instead
    next_state: State


def _rows() -> dict[tuple[Role | None, State, str], Transition]:
    """(role or None for both, state, received message type) -> transition."""
    s, c, t = Role.SERVER, Role.CLIENT, Transition
    rows = {
        (s, State.AWAITING_HELLO, "hello"): t("accept_hello", State.AUTHENTICATING),
        (c, State.AWAITING_HELLO, "hello_ack"): t("accept_hello_ack", State.AUTHENTICATING),
        (s, State.AUTHENTICATING, "auth_proof"): t("accept_auth_proof", State.READY),
        (c, State.AUTHENTICATING, "auth_ok"): t("accept_auth_ok", State.READY),
        (None, State.READY, "ping"): t("answer_ping", State.READY),
        (None, State.READY, "pong"): t("ignore", State.READY),
        (None, State.READY, ANY): t("deliver", State.READY),
        (None, State.CLOSING, ANY): t("ignore", State.CLOSING),
        (None, State.CLOSED, ANY): t("ignore", State.CLOSED),
        (None, State.ERROR, ANY): t("ignore", State.ERROR),
    }
    for state in (State.AWAITING_HELLO, State.AUTHENTICATING):
        rows[(None, state, "error")] = t("peer_refused", State.ERROR)
        rows[(None, state, ANY)] = t("unexpected", State.ERROR)
    for state in (State.AWAITING_HELLO, State.AUTHENTICATING, State.READY, State.CLOSING):
        rows[(None, state, "goodbye")] = t("peer_goodbye", State.CLOSED)
    for name in _HANDSHAKE_TYPES:
        rows[(None, State.READY, name)] = t("unexpected", State.ERROR)
    return rows


#: What a received message does. Lookup order: exact role, both roles, then ANY.
RECEIVE_TABLE: Final[Mapping[tuple[Role | None, State, str], Transition]] = _rows()

_HANDSHAKING = (State.AWAITING_HELLO, State.AUTHENTICATING)
_LIVE = frozenset({*_HANDSHAKING, State.READY})

#: What local calls and timers do: (event, state) -> next state; absent = no-op.
LOCAL_TABLE: Final[Mapping[tuple[str, State], State]] = {
    **{("handshake_timeout", st): State.ERROR for st in _HANDSHAKING},
    ("stale_timeout", State.READY): State.ERROR,
    **{("close", st): State.CLOSING for st in _LIVE},
    ("close_timeout", State.CLOSING): State.CLOSED,
    **{("connection_lost", st): State.CLOSED for st in (*_LIVE, State.CLOSING)},
    **{("fail", st): State.ERROR for st in (*_LIVE, State.CLOSING)},
}  # fmt: skip


class _Refusal(Exception):
    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


SignFn = Callable[[bytes], bytes]
VerifyClientFn = Callable[[Hello, bytes, bytes], bool]
VerifyServerFn = Callable[[HelloAck], bool]


class PeerSession:
    """One connection's handshake and liveness; see the module docstring for the API."""

    def __init__(
        self,
        role: Role,
        local: Hello,
        *,
        sign: SignFn | None = None,
        verify_client: VerifyClientFn | None = None,
        verify_server: VerifyServerFn | None = None,
        party_key: bytes | str | None = None,
        bulk_port: int | None = None,
        nonce: bytes | None = None,
        timers: SessionTimers | None = None,
    ) -> None:
        if role is Role.CLIENT and (sign is None or verify_server is None):
            raise LocalProtocolError("a client session needs sign() and verify_server()")
        if role is Role.SERVER and verify_client is None:
            raise LocalProtocolError("a server session needs verify_client()")
        if isinstance(party_key, str):
            party_key = party_key.encode()
        if party_key is not None and not party_key:
            raise LocalProtocolError("the party key is empty; use None for no party key")
        self.role = role
        self.local = local
        self.state = State.AWAITING_HELLO
        self.timers = timers or SessionTimers()
        self.remote: Hello | HelloAck | None = None
        self.last_seen: float | None = None  # when anything was last received
        self._sign, self._verify_client, self._verify_server = sign, verify_client, verify_server
        self._party_key = party_key
        self._bulk_port = bulk_port
        self._nonce = nonce if nonce is not None else secrets.token_bytes(32)
        self._transcript = b""
        self._started_at: float | None = None
        self._closing_since = 0.0
        self._last_ping: float | None = None
        self._ping_seq = 0

    @classmethod
    def client(
        cls,
        local: Hello,
        *,
        sign: SignFn,
        verify_server: VerifyServerFn,
        party_key: bytes | str | None = None,
        timers: SessionTimers | None = None,
    ) -> PeerSession:
        """``verify_server(ack)`` checks ``ack.peer_id`` against the TLS certificate."""
        return cls(
            Role.CLIENT, local, sign=sign, verify_server=verify_server,
            party_key=party_key, timers=timers,
        )  # fmt: skip

    @classmethod
    def server(
        cls,
        local: Hello,
        *,
        verify_client: VerifyClientFn,
        party_key: bytes | str | None = None,
        bulk_port: int | None = None,
        nonce: bytes | None = None,
        timers: SessionTimers | None = None,
    ) -> PeerSession:
        """``verify_client(hello, transcript, signature)`` checks Ed25519 with hello.public_key."""
        return cls(
            Role.SERVER, local, verify_client=verify_client, party_key=party_key,
            bulk_port=bulk_port, nonce=nonce, timers=timers,
        )  # fmt: skip

    @property
    def peer_id(self) -> str | None:
        return None if self.remote is None else self.remote.peer_id

    # -- calls from the glue ---------------------------------------------------------

    def start(self, now: float) -> Step:
        """Arm the handshake deadline; a client gets its Hello to send."""
        if self._started_at is not None:
            raise LocalProtocolError("session already started")
        self._started_at = now
        return Step(send=(self.local,)) if self.role is Role.CLIENT else Step()

    def receive(self, message: Message, now: float) -> Step:
        """Feed one message decoded from the control stream."""
        self.note_activity(now)
        transition = self._lookup(message.type)
        handler: Callable[[Message, float], Step] = getattr(self, f"_do_{transition.action}")
        try:
            step = handler(message, now)
        except _Refusal as refusal:
            return self._refuse(refusal.code, refusal.reason)
        self.state = transition.next_state
        return step

    def receive_unknown(self, now: float) -> Step:
        """A message of a type we do not know arrived: ignored, but the peer is alive."""
        self.note_activity(now)
        return Step()

    def note_activity(self, now: float) -> None:
        """Anything arrived from the peer (e.g. on a request stream): it is not idle."""
        self._require_started()
        if self.state in _LIVE:
            self.last_seen = now

    def send(self, message: Message) -> Step:
        """Check that the glue may send ``message`` now (READY, not a session message)."""
        if self.state is not State.READY:
            raise LocalProtocolError(f"cannot send {message.type} in state {self.state}")
        if message.type in (*_HANDSHAKE_TYPES, "goodbye"):
            raise LocalProtocolError(f"{message.type} is sent by the session itself")
        return Step(send=(message,))

    def close(self, reason: str, now: float) -> Step:
        """Say Goodbye and wait (at most ``timers.close``) for the transport to end."""
        if self._local_event("close") is None:
            return Step()
        self._closing_since = now
        return Step(send=(Goodbye(reason=reason[:200]),))

    def connection_lost(self, now: float) -> Step:
        previous = self.state
        if self._local_event("connection_lost") is None:
            return Step()
        by_peer = previous is not State.CLOSING
        return Step(events=(SessionClosed("connection lost", by_peer=by_peer),))

    def fail(self, error: ProtocolError, now: float) -> Step:
        """The peer sent bytes we cannot decode (not UnknownMessageType): end the session."""
        if self.state not in (*_LIVE, State.CLOSING):
            return Step()
        return self._refuse(error.code, error.message)

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called, or None."""
        if self._started_at is None:
            return None
        if self.state in (State.AWAITING_HELLO, State.AUTHENTICATING):
            return self._started_at + self.timers.handshake
        if self.state is State.READY:
            return min(self._next_ping_at(), self._stale_at())
        if self.state is State.CLOSING:
            return self._closing_since + self.timers.close
        return None

    def handle_timer(self, now: float) -> Step:
        deadline = self.get_timer()
        if deadline is None or now < deadline:
            return Step()
        if self.state is State.READY:
            return self._liveness(now)
        if self.state is State.CLOSING:
            self._local_event("close_timeout")
            return Step(events=(SessionClosed("peer did not close in time", by_peer=False),))
        reason = f"handshake not finished within {self.timers.handshake:g} s"
        return self._refuse(ErrorCode.TIMEOUT, reason, "handshake_timeout")

    # -- table machinery -------------------------------------------------------------

    def _lookup(self, type_name: str) -> Transition:
        for key in (
            (self.role, self.state, type_name),
            (None, self.state, type_name),
            (self.role, self.state, ANY),
            (None, self.state, ANY),
        ):
            if key in RECEIVE_TABLE:
                return RECEIVE_TABLE[key]
        raise AssertionError(f"no transition for {self.role}/{self.state}/{type_name}")

    def _local_event(self, event: str) -> State | None:
        next_state = LOCAL_TABLE.get((event, self.state))
        if next_state is not None:
            self.state = next_state
        return next_state

    def _refuse(self, code: ErrorCode, reason: str, event: str = "fail") -> Step:
        """Tell the peer why (Error) and move to ERROR through ``event``'s table row."""
        self._local_event(event)
        return Step(
            send=(Error(code=code, message=reason[:1000]),),
            events=(SessionFailed(code, reason, by_peer=False),),
        )

    def _require_started(self) -> None:
        if self._started_at is None:
            raise LocalProtocolError("call start(now) before feeding messages")

    # -- liveness --------------------------------------------------------------------

    def _stale_at(self) -> float:
        return (self.last_seen or 0.0) + self.timers.stale

    def _next_ping_at(self) -> float:
        idle_since = max(self.last_seen or 0.0, self._last_ping or 0.0)
        return idle_since + self.timers.ping_interval

    def _liveness(self, now: float) -> Step:
        if now >= self._stale_at():
            silent = now - (self.last_seen or 0.0)
            return self._refuse(ErrorCode.TIMEOUT, f"peer silent for {silent:g} s", "stale_timeout")
        if now < self._next_ping_at():
            return Step()
        self._last_ping = now
        self._ping_seq += 1
        return Step(send=(Ping(seq=self._ping_seq),))

    # -- actions (named in RECEIVE_TABLE) --------------------------------------------

    def _do_ignore(self, message: Message, now: float) -> Step:
        return Step()

    def _do_deliver(self, message: Message, now: float) -> Step:
        return Step(events=(MessageReceived(message),))

    def _do_answer_ping(self, message: Message, now: float) -> Step:
        assert isinstance(message, Ping)
        return Step(send=(Pong(seq=message.seq),))

    def _do_unexpected(self, message: Message, now: float) -> Step:
        raise _Refusal(ErrorCode.UNEXPECTED, f"{message.type} not expected in state {self.state}")

    def _do_peer_refused(self, message: Message, now: float) -> Step:
        assert isinstance(message, Error)
        reason = f"peer refused the session: {message.code}: {message.message}"
        return Step(events=(SessionFailed(message.code, reason, by_peer=True),))

    def _do_peer_goodbye(self, message: Message, now: float) -> Step:
        assert isinstance(message, Goodbye)
        reason = f"peer said goodbye: {message.reason}" if message.reason else "peer said goodbye"
        return Step(events=(SessionClosed(reason, by_peer=True),))

    def _do_accept_hello(self, message: Message, now: float) -> Step:
        assert isinstance(message, Hello)
        self._check_peer(message.proto_major, message.proto_minor, message.peer_id)
        if peer_id_for(message.public_key) != message.peer_id:
            raise _Refusal(ErrorCode.AUTH_FAILED, "peer_id does not match the public key sent")
        self.remote = message
        self._transcript = handshake_transcript(self._nonce, message.peer_id, self.local.peer_id)
        return Step(send=(self._hello_ack(),))

    def _do_accept_hello_ack(self, message: Message, now: float) -> Step:
        assert isinstance(message, HelloAck)
        assert self._sign is not None
        self._check_peer(message.proto_major, message.proto_minor, message.peer_id)
        assert self._verify_server is not None
        if not self._verify_server(message):
            raise _Refusal(ErrorCode.AUTH_FAILED, "server peer_id does not match its certificate")
        self.remote = message
        self._transcript = handshake_transcript(message.nonce, self.local.peer_id, message.peer_id)
        mac = self._mac(Role.CLIENT)
        return Step(send=(AuthProof(signature=self._sign(self._transcript), party_mac=mac),))

    def _do_accept_auth_proof(self, message: Message, now: float) -> Step:
        assert isinstance(message, AuthProof)
        assert isinstance(self.remote, Hello)
        assert self._verify_client is not None
        if not self._verify_client(self.remote, self._transcript, message.signature):
            raise _Refusal(ErrorCode.AUTH_FAILED, "signature does not prove the client's peer_id")
        self._check_party_mac(message.party_mac, Role.CLIENT)
        return Step(send=(AuthOk(party_mac=self._mac(Role.SERVER)),), events=(self._complete(),))

    def _do_accept_auth_ok(self, message: Message, now: float) -> Step:
        assert isinstance(message, AuthOk)
        self._check_party_mac(message.party_mac, Role.SERVER)
        return Step(events=(self._complete(),))

    # -- handshake helpers -----------------------------------------------------------

    def _check_peer(self, major: int, minor: int, peer_id: str) -> None:
        if not is_compatible(major):
            raise _Refusal(
                ErrorCode.UNSUPPORTED_VERSION,
                f"peer speaks protocol {major}.{minor}; we speak {PROTOCOL_MAJOR}.x",
            )
        if peer_id == self.local.peer_id:  # e.g. a static peer or mDNS advert of ourselves
            raise _Refusal(ErrorCode.UNEXPECTED, "connected to ourselves (same peer_id)")

    def _hello_ack(self) -> HelloAck:
        local = self.local
        return HelloAck(
            peer_id=local.peer_id, name=local.name, proto_major=PROTOCOL_MAJOR,
            proto_minor=PROTOCOL_MINOR, listen_port=local.listen_port,
            library_rev=local.library_rev, library_digest=local.library_digest,
            features=local.features, nonce=self._nonce, bulk_port=self._bulk_port,
        )  # fmt: skip

    def _mac(self, role: Role) -> bytes | None:
        if self._party_key is None:
            return None
        return party_mac(self._party_key, role, self._transcript)

    def _check_party_mac(self, received: bytes | None, sender: Role) -> None:
        """Both sides need the same party key, or both none.

        A client with a key refuses a server without one (and vice versa): the party
        key says "only party members", so a non-member is refused either way.
        """
        expected = self._mac(sender)
        if expected is None:
            if received is not None and self.role is Role.SERVER:
                raise _Refusal(ErrorCode.PARTY_KEY, "the peer uses a party key; this host has none")
            return
        if received is None:
            raise _Refusal(ErrorCode.PARTY_KEY, "this party needs a party key; the peer has none")
        if not hmac.compare_digest(expected, received):
            raise _Refusal(ErrorCode.PARTY_KEY, "the peer's party key does not match ours")

    def _complete(self) -> HandshakeComplete:
        assert self.remote is not None
        shared = frozenset(self.local.features) & frozenset(self.remote.features)
        return HandshakeComplete(self.remote, shared)
