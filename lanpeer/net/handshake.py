"""The connection handshake on the control stream: Hello, HelloAck, AuthProof, AuthOk.

Owns the transcript, the client's signature over the server nonce bound to both ids, the
party-key MACs in both directions, and the checks on each. The server proves its peer_id by
its TLS certificate, which the client reads from the QUIC connection. Never keeps a session
alive after a failed proof: every refusal raises ``HandshakeRefused`` and is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from lanpeer_proto import codec
from lanpeer_proto.errors import ErrorCode, RemoteProtocolError
from lanpeer_proto.framing import DEFAULT_MAX_FRAME_SIZE
from lanpeer_proto.messages import AuthOk, AuthProof, Error, Hello, HelloAck, Message
from lanpeer_proto.version import is_compatible

from lanpeer.net.errors import HandshakeRefused
from lanpeer.net.identity import (
    Identity,
    party_mac,
    peer_id_of,
    peer_id_of_certificate,
    verify_signature,
)
from lanpeer.net.quic import QuicPeerConnection, QuicStream

log = logging.getLogger(__name__)

_M = TypeVar("_M", bound=Message)
#: Builds our HelloAck for a fresh nonce (the node knows rev, digest and ports).
AckFactory = Callable[[bytes], HelloAck]

_CLIENT_ROLE = b"lanpeer/1 client"
_SERVER_ROLE = b"lanpeer/1 server"


@dataclass(frozen=True)
class RemoteFacts:
    """What the handshake proved and announced about the other side."""

    peer_id: str
    name: str
    proto_ver: str
    listen_port: int
    library_rev: int
    library_digest: bytes
    features: frozenset[str]
    bulk_port: int | None


def transcript(hello: Hello, ack: HelloAck) -> bytes:
    """Hash of both opening messages: it covers both ids, both keys' claims and the nonce."""
    return hashlib.sha256(b"lanpeer/1 handshake" + codec.encode(hello) + codec.encode(ack)).digest()


def _facts(msg: Hello | HelloAck, bulk_port: int | None) -> RemoteFacts:
    return RemoteFacts(
        peer_id=msg.peer_id,
        name=msg.name,
        proto_ver=f"{msg.proto_major}.{msg.proto_minor}",
        listen_port=msg.listen_port,
        library_rev=msg.library_rev,
        library_digest=msg.library_digest,
        features=frozenset(msg.features),
        bulk_port=bulk_port,
    )


async def _read(stream: QuicStream) -> Message:
    try:
        message = codec.decode(await stream.read_frame(DEFAULT_MAX_FRAME_SIZE))
    except RemoteProtocolError as exc:
        raise HandshakeRefused(exc.code, exc.message) from None
    if isinstance(message, Error):
        raise HandshakeRefused(message.code, f"the peer refused us: {message.message}")
    return message


async def _refuse(stream: QuicStream, code: ErrorCode, why: str) -> HandshakeRefused:
    """Tell the peer why (best effort) and return the exception to raise."""
    try:
        await stream.write_frame(codec.encode(Error(code=code, message=why)), end=True)
    except ConnectionError:
        pass
    return HandshakeRefused(code, why)


def _expect(message: Message, kind: type[_M]) -> _M:
    if not isinstance(message, kind):
        raise HandshakeRefused(ErrorCode.UNEXPECTED, f"expected {kind.__name__}, got {message}")
    return message


async def serve_handshake(
    stream: QuicStream, identity: Identity, make_ack: AckFactory, party_key: str | None
) -> RemoteFacts:
    """Server side: check the client's Hello, send our nonce, verify its proof."""
    hello = _expect(await _read(stream), Hello)
    if not is_compatible(hello.proto_major):
        raise await _refuse(stream, ErrorCode.UNSUPPORTED_VERSION,
                            f"protocol {hello.proto_major}.x is not ours")  # fmt: skip
    if peer_id_of(hello.public_key) != hello.peer_id:
        raise await _refuse(stream, ErrorCode.AUTH_FAILED, "peer_id does not match public key")
    ack = make_ack(secrets.token_bytes(32))
    await stream.write_frame(codec.encode(ack))
    proof = _expect(await _read(stream), AuthProof)
    script = transcript(hello, ack)
    if not identity_proven(hello, proof, script):
        raise await _refuse(stream, ErrorCode.AUTH_FAILED, "signature over the nonce is wrong")
    if party_key is not None and not _mac_ok(party_key, _CLIENT_ROLE, script, proof.party_mac):
        raise await _refuse(stream, ErrorCode.PARTY_KEY,
                            "party key missing or different: use the party's --party-key")  # fmt: skip
    mac = party_mac(party_key, _SERVER_ROLE, script) if party_key else None
    await stream.write_frame(codec.encode(AuthOk(party_mac=mac)))
    return _facts(hello, None)


def identity_proven(hello: Hello, proof: AuthProof, script: bytes) -> bool:
    return verify_signature(hello.public_key, proof.signature, _CLIENT_ROLE + script)


def _mac_ok(party_key: str, role: bytes, script: bytes, mac: bytes | None) -> bool:
    return mac is not None and hmac.compare_digest(mac, party_mac(party_key, role, script))


async def client_handshake(
    conn: QuicPeerConnection,
    stream: QuicStream,
    identity: Identity,
    hello: Hello,
    party_key: str | None,
    expected_id: str | None,
) -> RemoteFacts:
    """Client side: check the TLS certificate's peer_id, send Hello, prove ours."""
    cert = conn.peer_certificate()
    cert_id = peer_id_of_certificate(cert) if cert is not None else None
    if cert_id is None or (expected_id is not None and cert_id != expected_id):
        raise HandshakeRefused(ErrorCode.AUTH_FAILED,
                               f"certificate proves {cert_id}, expected {expected_id}")  # fmt: skip
    await stream.write_frame(codec.encode(hello))
    ack = _expect(await _read(stream), HelloAck)
    if ack.peer_id != cert_id:
        raise await _refuse(stream, ErrorCode.AUTH_FAILED, "HelloAck peer_id is not the TLS key")
    if not is_compatible(ack.proto_major):
        raise await _refuse(stream, ErrorCode.UNSUPPORTED_VERSION,
                            f"protocol {ack.proto_major}.x is not ours")  # fmt: skip
    script = transcript(hello, ack)
    mac = party_mac(party_key, _CLIENT_ROLE, script) if party_key else None
    signature = identity.sign(_CLIENT_ROLE + script)
    await stream.write_frame(codec.encode(AuthProof(signature=signature, party_mac=mac)))
    ok = _expect(await _read(stream), AuthOk)
    if party_key is not None and not _mac_ok(party_key, _SERVER_ROLE, script, ok.party_mac):
        raise await _refuse(stream, ErrorCode.PARTY_KEY,
                            "the peer does not know our party key")  # fmt: skip
    if party_key is None and ok.party_mac is not None:
        raise await _refuse(stream, ErrorCode.PARTY_KEY, "the peer runs with a party key; we don't")
    return _facts(ack, ack.bulk_port)
