"""The session table through two sessions wired in memory (h11's ConnectionPair style).

Every message crosses real bytes: encode -> frame -> FrameDecoder -> decode. Time is a
plain number; nothing sleeps. Signatures are real Ed25519 (the glue's job, done here
with ``cryptography`` as the daemon will).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from lanpeer_proto import codec
from lanpeer_proto.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from lanpeer_proto.framing import FrameDecoder, encode_frame
from lanpeer_proto.messages import (
    MESSAGE_TYPES,
    AuthOk,
    Error,
    GetManifest,
    Goodbye,
    Hello,
    HelloAck,
    Message,
    Ping,
    Pong,
)
from lanpeer_proto.session import (
    RECEIVE_TABLE,
    HandshakeComplete,
    MessageReceived,
    PeerSession,
    Role,
    SessionClosed,
    SessionEvent,
    SessionFailed,
    SessionTimers,
    State,
    Step,
    handshake_transcript,
    party_mac,
    peer_id_for,
)
from lanpeer_proto.version import PROTOCOL_MAJOR
from proto_corpus import all_messages

DIGEST = b"\x07" * 32


@dataclass
class Peer:
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def public_key(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def peer_id(self) -> str:
        return peer_id_for(self.public_key)

    def hello(self, name: str, **overrides: object) -> Hello:
        fields: dict[str, object] = {
            "peer_id": self.peer_id,
            "public_key": self.public_key,
            "name": name,
            "proto_major": PROTOCOL_MAJOR,
            "proto_minor": 0,
            "listen_port": 47600,
            "library_rev": 3,
            "library_digest": DIGEST,
            "features": ["tcp-bulk", "deltas"] if name == "alice" else ["tcp-bulk"],
        }
        fields.update(overrides)
        return Hello.model_validate(fields)


def ed25519_verify(hello: Hello, transcript: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(hello.public_key).verify(signature, transcript)
    except InvalidSignature:
        return False
    return True


class SessionPair:
    """A client and a server session joined by an in-memory byte pipe."""

    def __init__(self, client: PeerSession, server: PeerSession) -> None:
        self.sessions = {Role.CLIENT: client, Role.SERVER: server}
        self.decoders = {Role.CLIENT: FrameDecoder(), Role.SERVER: FrameDecoder()}
        self.events: dict[Role, list[SessionEvent]] = {Role.CLIENT: [], Role.SERVER: []}
        self.sent: dict[Role, list[Message]] = {Role.CLIENT: [], Role.SERVER: []}
        self.cut = False  # when True, bytes are lost (the peer vanished)
        self.drop: set[str] = set()  # message types lost in transit

    @property
    def client(self) -> PeerSession:
        return self.sessions[Role.CLIENT]

    @property
    def server(self) -> PeerSession:
        return self.sessions[Role.SERVER]

    def start(self, now: float) -> None:
        self.apply(Role.SERVER, self.server.start(now), now)
        self.apply(Role.CLIENT, self.client.start(now), now)

    def apply(self, side: Role, step: Step, now: float) -> None:
        """Record ``side``'s events and carry what it sends to the other side."""
        self.events[side].extend(step.events)
        other = Role.SERVER if side is Role.CLIENT else Role.CLIENT
        for message in step.send:
            self.sent[side].append(message)
            if self.cut or message.type in self.drop:
                continue
            self.decoders[other].feed(encode_frame(codec.encode(message)))
            for frame in list(self.decoders[other].frames()):
                received = self.sessions[other].receive(codec.decode(frame), now)
                self.apply(other, received, now)

    def tick(self, side: Role, now: float) -> None:
        self.apply(side, self.sessions[side].handle_timer(now), now)

    def inject(self, side: Role, message: Message, now: float) -> None:
        """Deliver a hand-made message to ``side``, as a hostile peer would send it."""
        self.apply(side, self.sessions[side].receive(message, now), now)


def make_pair(
    alice: Peer | None = None,
    bob: Peer | None = None,
    *,
    client_key: str | None = None,
    server_key: str | None = None,
    client_hello: Hello | None = None,
    verify_server: bool = True,
) -> SessionPair:
    alice, bob = alice or Peer(), bob or Peer()
    client = PeerSession.client(
        client_hello or alice.hello("alice"),
        sign=alice.key.sign,
        verify_server=lambda ack: verify_server and ack.peer_id == bob.peer_id,
        party_key=client_key,
    )
    server = PeerSession.server(
        bob.hello("bob"), verify_client=ed25519_verify, party_key=server_key, bulk_port=47601
    )
    return SessionPair(client, server)


def failure(events: list[SessionEvent]) -> SessionFailed:
    failed = [e for e in events if isinstance(e, SessionFailed)]
    assert len(failed) == 1, events
    return failed[0]


def errors_sent(pair: SessionPair, side: Role) -> list[ErrorCode]:
    return [m.code for m in pair.sent[side] if isinstance(m, Error)]


# -- handshake -----------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "lan-party-2026"])
def test_handshake_makes_both_sides_ready(key: str | None) -> None:
    alice, bob = Peer(), Peer()
    pair = make_pair(alice, bob, client_key=key, server_key=key)
    pair.start(0.0)
    assert pair.client.state is State.READY
    assert pair.server.state is State.READY
    (client_done,) = pair.events[Role.CLIENT]
    (server_done,) = pair.events[Role.SERVER]
    assert isinstance(client_done, HandshakeComplete)
    assert isinstance(server_done, HandshakeComplete)
    assert client_done.peer_id == bob.peer_id
    assert server_done.peer_id == alice.peer_id
    assert client_done.shared_features == server_done.shared_features == {"tcp-bulk"}
    assert isinstance(client_done.remote, HelloAck)
    assert client_done.remote.bulk_port == 47601
    assert [m.type for m in pair.sent[Role.CLIENT]] == ["hello", "auth_proof"]
    assert [m.type for m in pair.sent[Role.SERVER]] == ["hello_ack", "auth_ok"]


def test_party_key_never_crosses_the_wire() -> None:
    pair = make_pair(client_key="secret-key-123", server_key="secret-key-123")
    pair.start(0.0)
    wire = b"".join(codec.encode(m) for side in Role for m in pair.sent[side])
    assert b"secret-key-123" not in wire


@pytest.mark.parametrize(
    ("client_key", "server_key", "refused_by"),
    [
        (None, "party", Role.SERVER),  # client has no key
        ("wrong", "party", Role.SERVER),  # client has another key
        ("party", None, Role.SERVER),  # server is not in the client's party
    ],
)
def test_party_key_mismatch_is_refused(
    client_key: str | None, server_key: str | None, refused_by: Role
) -> None:
    pair = make_pair(client_key=client_key, server_key=server_key)
    pair.start(0.0)
    other = Role.CLIENT if refused_by is Role.SERVER else Role.SERVER
    assert errors_sent(pair, refused_by) == [ErrorCode.PARTY_KEY]
    assert failure(pair.events[refused_by]).by_peer is False
    assert failure(pair.events[other]) == SessionFailed(
        ErrorCode.PARTY_KEY, failure(pair.events[other]).reason, by_peer=True
    )
    assert pair.client.state is pair.server.state is State.ERROR


@pytest.mark.parametrize("mac", [None, b"\x00" * 32])
def test_client_refuses_server_without_the_party_key(mac: bytes | None) -> None:
    pair = make_pair(client_key="party", server_key="party")
    pair.drop = {"auth_ok"}  # the honest AuthOk is lost; a hostile server's arrives instead
    pair.start(0.0)
    pair.inject(Role.CLIENT, AuthOk(party_mac=mac), 0.1)
    assert pair.client.state is State.ERROR
    assert failure(pair.events[Role.CLIENT]).code is ErrorCode.PARTY_KEY
    assert errors_sent(pair, Role.CLIENT) == [ErrorCode.PARTY_KEY]


def test_peer_id_not_matching_public_key_is_refused() -> None:
    alice, mallory = Peer(), Peer()
    forged = mallory.hello("mallory", peer_id=alice.peer_id)  # claims alice's id
    pair = make_pair(mallory, client_hello=forged)
    pair.start(0.0)
    assert errors_sent(pair, Role.SERVER) == [ErrorCode.AUTH_FAILED]
    assert "public key" in failure(pair.events[Role.SERVER]).reason
    assert pair.server.state is State.ERROR


def test_signature_by_another_key_is_refused() -> None:
    alice, mallory = Peer(), Peer()
    # Mallory replays alice's public Hello but can only sign with her own key.
    pair = make_pair(mallory, client_hello=alice.hello("alice"))
    pair.start(0.0)
    assert errors_sent(pair, Role.SERVER) == [ErrorCode.AUTH_FAILED]
    assert "signature" in failure(pair.events[Role.SERVER]).reason
    assert failure(pair.events[Role.CLIENT]).by_peer is True
    assert pair.client.state is pair.server.state is State.ERROR


def test_client_refuses_server_whose_certificate_does_not_match() -> None:
    pair = make_pair(verify_server=False)
    pair.start(0.0)
    assert errors_sent(pair, Role.CLIENT) == [ErrorCode.AUTH_FAILED]
    assert pair.client.state is pair.server.state is State.ERROR


def test_transcript_binds_nonce_and_both_ids() -> None:
    base = handshake_transcript(b"n" * 32, "A" * 52, "B" * 52)
    assert base != handshake_transcript(b"m" * 32, "A" * 52, "B" * 52)
    assert base != handshake_transcript(b"n" * 32, "B" * 52, "A" * 52)
    assert party_mac(b"k", Role.CLIENT, base) != party_mac(b"k", Role.SERVER, base)


@pytest.mark.parametrize("major", [PROTOCOL_MAJOR + 1, PROTOCOL_MAJOR - 1])
def test_other_major_version_is_refused_by_server(major: int) -> None:
    alice = Peer()
    pair = make_pair(alice, client_hello=alice.hello("alice", proto_major=major))
    pair.start(0.0)
    assert errors_sent(pair, Role.SERVER) == [ErrorCode.UNSUPPORTED_VERSION]
    assert failure(pair.events[Role.CLIENT]).code is ErrorCode.UNSUPPORTED_VERSION
    assert pair.client.state is pair.server.state is State.ERROR


def test_other_major_version_is_refused_by_client() -> None:
    pair = make_pair()
    pair.cut = True
    pair.start(0.0)
    pair.cut = False
    ack = HelloAck.model_validate(
        {
            **Peer().hello("bob").model_dump(),
            "type": "hello_ack",
            "proto_major": 9,
            "nonce": b"n" * 32,
        }
    )
    pair.inject(Role.CLIENT, ack, 0.1)
    assert errors_sent(pair, Role.CLIENT) == [ErrorCode.UNSUPPORTED_VERSION]
    assert "9.0" in failure(pair.events[Role.CLIENT]).reason


@pytest.mark.parametrize("side", list(Role))
def test_handshake_times_out(side: Role) -> None:
    pair = make_pair()
    pair.cut = True  # nothing arrives
    pair.start(100.0)
    session = pair.sessions[side]
    assert session.get_timer() == 110.0
    pair.tick(side, 109.9)
    assert session.state is State.AWAITING_HELLO
    pair.tick(side, 110.0)
    assert session.state is State.ERROR
    assert failure(pair.events[side]).code is ErrorCode.TIMEOUT
    assert errors_sent(pair, side) == [ErrorCode.TIMEOUT]
    assert session.get_timer() is None


def test_unexpected_message_during_handshake_is_refused() -> None:
    pair = make_pair()
    pair.server.start(0.0)
    step = pair.server.receive(GetManifest(game_id="quake"), 0.0)
    assert pair.server.state is State.ERROR
    assert [m.code for m in step.send if isinstance(m, Error)] == [ErrorCode.UNEXPECTED]


def test_handshake_message_when_ready_is_refused() -> None:
    pair = make_pair()
    pair.start(0.0)
    pair.inject(Role.SERVER, AuthOk(), 1.0)
    assert pair.server.state is State.ERROR
    assert failure(pair.events[Role.SERVER]).code is ErrorCode.UNEXPECTED


# -- ready: routing and liveness -----------------------------------------------------


def test_ready_messages_pass_through_to_the_glue() -> None:
    pair = make_pair()
    pair.start(0.0)
    pair.apply(Role.CLIENT, pair.client.send(GetManifest(game_id="quake")), 1.0)
    assert pair.events[Role.SERVER][-1] == MessageReceived(GetManifest(game_id="quake"))
    assert pair.server.last_seen == 1.0


def test_send_is_refused_before_ready_and_for_session_messages() -> None:
    pair = make_pair()
    with pytest.raises(LocalProtocolError):
        pair.client.send(GetManifest(game_id="quake"))
    pair.start(0.0)
    with pytest.raises(LocalProtocolError):
        pair.client.send(Goodbye())


def test_idle_peer_is_pinged_and_answers() -> None:
    pair = make_pair()
    pair.start(0.0)
    assert pair.client.get_timer() == 15.0
    pair.tick(Role.CLIENT, 15.0)
    assert pair.sent[Role.CLIENT][-1] == Ping(seq=1)
    assert pair.sent[Role.SERVER][-1] == Pong(seq=1)
    assert pair.client.last_seen == 15.0
    assert pair.client.get_timer() == 30.0


def test_any_received_message_postpones_the_ping() -> None:
    pair = make_pair()
    pair.start(0.0)
    pair.apply(Role.SERVER, pair.server.send(GetManifest(game_id="doom")), 10.0)
    pair.tick(Role.CLIENT, 15.0)
    assert not any(isinstance(m, Ping) for m in pair.sent[Role.CLIENT])
    assert pair.client.get_timer() == 25.0


def test_unknown_message_type_counts_as_activity() -> None:
    pair = make_pair()
    pair.start(0.0)
    assert pair.client.receive_unknown(12.0) == Step()
    assert pair.client.get_timer() == 27.0


def test_vanished_peer_is_pinged_then_goes_stale() -> None:
    pair = make_pair()
    pair.start(0.0)
    pair.cut = True
    for now in (15.0, 30.0):
        pair.tick(Role.CLIENT, now)
        assert pair.client.state is State.READY
    assert [m for m in pair.sent[Role.CLIENT] if isinstance(m, Ping)] == [Ping(seq=1), Ping(seq=2)]
    assert pair.client.get_timer() == 45.0
    pair.tick(Role.CLIENT, 45.0)
    assert pair.client.state is State.ERROR
    assert failure(pair.events[Role.CLIENT]).code is ErrorCode.TIMEOUT
    assert pair.client.get_timer() is None


def test_timers_are_configurable() -> None:
    alice = Peer()
    timers = SessionTimers(handshake=1.0, ping_interval=2.0, stale=5.0)
    session = PeerSession.client(
        alice.hello("alice"), sign=alice.key.sign, verify_server=lambda ack: True, timers=timers
    )
    session.start(0.0)
    assert session.get_timer() == 1.0


# -- closing -------------------------------------------------------------------------


def test_goodbye_closes_both_sides() -> None:
    pair = make_pair()
    pair.start(0.0)
    pair.apply(Role.CLIENT, pair.client.close("shutting down", 5.0), 5.0)
    assert pair.client.state is State.CLOSING
    assert pair.server.state is State.CLOSED
    assert pair.events[Role.SERVER][-1] == SessionClosed(
        "peer said goodbye: shutting down", by_peer=True
    )
    assert pair.client.get_timer() == 7.0
    pair.apply(Role.CLIENT, pair.client.connection_lost(6.0), 6.0)
    assert pair.client.state is State.CLOSED
    assert pair.events[Role.CLIENT][-1] == SessionClosed("connection lost", by_peer=False)


def test_closing_ends_after_close_timeout() -> None:
    pair = make_pair()
    pair.start(0.0)
    pair.cut = True
    pair.apply(Role.CLIENT, pair.client.close("bye", 5.0), 5.0)
    pair.tick(Role.CLIENT, 7.0)
    assert pair.client.state is State.CLOSED
    assert pair.client.get_timer() is None


def test_error_is_permanent() -> None:
    pair = make_pair()
    pair.start(0.0)
    pair.apply(Role.SERVER, pair.server.fail(RemoteProtocolError("junk"), 1.0), 1.0)
    assert pair.server.state is State.ERROR
    for call in (
        lambda: pair.server.receive(Ping(seq=1), 2.0),
        lambda: pair.server.connection_lost(2.0),
        lambda: pair.server.close("x", 2.0),
        lambda: pair.server.handle_timer(1e9),
    ):
        assert call() == Step()
        assert pair.server.state is State.ERROR


def test_client_learns_why_the_server_failed() -> None:
    pair = make_pair()
    pair.start(0.0)
    pair.apply(Role.SERVER, pair.server.fail(RemoteProtocolError("junk"), 1.0), 1.0)
    # In READY an Error on the control stream is the glue's to judge: it is delivered.
    assert pair.events[Role.CLIENT][-1] == MessageReceived(
        Error(code=ErrorCode.BAD_MESSAGE, message="junk")
    )


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("state", list(State))
def test_every_role_state_and_message_type_has_a_row(role: Role, state: State) -> None:
    keys = RECEIVE_TABLE.keys()
    for type_name in MESSAGE_TYPES:
        assert any(
            (who, state, name) in keys for who in (role, None) for name in (type_name, "*")
        ), (role, state, type_name)


def test_activity_on_other_streams_postpones_the_ping() -> None:
    pair = make_pair()
    pair.start(0.0)
    pair.client.note_activity(14.0)
    assert pair.client.get_timer() == 29.0


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(list(Role)),
    st.lists(st.tuples(st.sampled_from(all_messages()), st.floats(0, 100)), max_size=12),
)
def test_any_message_sequence_never_raises_and_error_is_permanent(
    role: Role, inputs: list[tuple[Message, float]]
) -> None:
    alice = Peer()
    if role is Role.CLIENT:
        session = PeerSession.client(
            alice.hello("alice"), sign=alice.key.sign, verify_server=lambda ack: True
        )
    else:
        session = PeerSession.server(alice.hello("alice"), verify_client=ed25519_verify)
    session.start(0.0)
    seen_error = False
    for message, now in inputs:
        step = session.receive(message, now)
        step = Step(step.send + session.handle_timer(now).send, step.events)
        for sent in step.send:
            assert codec.decode(codec.encode(sent)) == sent
        if seen_error:
            assert session.state is State.ERROR
            assert step == Step()
        seen_error = session.state is State.ERROR


def test_connecting_to_ourselves_is_refused() -> None:
    alice = Peer()
    pair = make_pair(alice, alice)
    pair.start(0.0)
    assert errors_sent(pair, Role.SERVER) == [ErrorCode.UNEXPECTED]
    assert "ourselves" in failure(pair.events[Role.SERVER]).reason
    assert pair.client.state is pair.server.state is State.ERROR


def test_every_action_in_the_table_exists() -> None:
    for transition in RECEIVE_TABLE.values():
        assert callable(getattr(PeerSession, f"_do_{transition.action}", None)), transition


def test_client_needs_both_crypto_callables() -> None:
    alice = Peer()
    with pytest.raises(LocalProtocolError):
        PeerSession(Role.CLIENT, alice.hello("alice"), sign=alice.key.sign)


@settings(max_examples=200, deadline=None)
@given(st.sets(st.sampled_from(["hello", "hello_ack", "auth_proof", "auth_ok"])))
def test_no_side_stays_in_the_handshake_after_the_deadline(lost: set[str]) -> None:
    pair = make_pair()
    pair.drop = set(lost)
    pair.start(0.0)
    for side in Role:
        pair.tick(side, 10.0)
    for session in pair.sessions.values():
        assert session.state in (State.READY, State.ERROR)
    assert (pair.client.state is State.READY) == (not lost)
    # The server is ready once it sent AuthOk; a lost AuthOk only fails the client (whose
    # Error then reaches the server's glue, which closes the connection).
    assert (pair.server.state is State.READY) == (not lost - {"auth_ok"})
