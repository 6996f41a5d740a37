"""Handshake crypto that needs only the stdlib: transcript, party-key HMAC, peer ids.

Owns the exact bytes the client signs and the party-key MACs. Never does Ed25519
(``lanpeer_proto`` must not import ``cryptography``): signing and verifying are the
glue's callables. Changing any byte here is a major protocol version change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from enum import StrEnum
from typing import Final

from lanpeer_proto.version import PROTOCOL_MAJOR


class Role(StrEnum):
    CLIENT = "client"  # dialled the connection; proves its peer_id by signing
    SERVER = "server"  # accepted it; proven by its TLS certificate, chooses the nonce


TRANSCRIPT_LABEL: Final = b"lanpeer-handshake-v1"
_PARTY_LABEL: Final = b"lanpeer-party-v1"


def handshake_transcript(nonce: bytes, client_peer_id: str, server_peer_id: str) -> bytes:
    """The bytes the client signs: the server's nonce bound to both peer ids.

    Each part is length-prefixed, so no two different inputs give the same bytes.
    """
    parts = (
        TRANSCRIPT_LABEL,
        str(PROTOCOL_MAJOR).encode(),
        nonce,
        client_peer_id.encode(),
        server_peer_id.encode(),
    )
    return b"".join(len(part).to_bytes(2, "big") + part for part in parts)


def party_mac(key: bytes, role: Role, transcript: bytes) -> bytes:
    """HMAC-SHA256 proving knowledge of the party key; the role stops reflection."""
    message = _PARTY_LABEL + b"\x00" + role.value.encode() + b"\x00" + transcript
    return hmac.new(key, message, hashlib.sha256).digest()


_BULK_LABEL: Final = b"lanpeer-bulk-v1"


def bulk_proof(secret: bytes, nonce: bytes, client_peer_id: str, server_peer_id: str) -> bytes:
    """HMAC-SHA256 a downloader answers a bulk server's challenge with (SPEC §5b).

    Keyed by the per-session secret that crossed only the encrypted QUIC session, over the
    server's fresh nonce bound to both peer ids: nothing on the TCP wire can be replayed.
    """
    parts = (_BULK_LABEL, nonce, client_peer_id.encode(), server_peer_id.encode())
    message = b"".join(len(part).to_bytes(2, "big") + part for part in parts)
    return hmac.new(secret, message, hashlib.sha256).digest()


def peer_id_for(public_key: bytes) -> str:
    """``peer_id`` of an Ed25519 public key: base32 of its SHA-256, unpadded (52 chars)."""
    return base64.b32encode(hashlib.sha256(public_key).digest()).decode().rstrip("=")
