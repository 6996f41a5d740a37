"""This peer's identity: an Ed25519 key and a self-signed certificate in the state dir.

Owns key creation, persistence (mode 0600), ``peer_id`` derivation (lanpeer_proto's rule) and
Ed25519 signing and verifying for the handshake. Never talks to the network and never logs
key material.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from lanpeer_proto.handshake import peer_id_for

from lanpeer.errors import LanpeerError

KEY_FILE = "peer_key.pem"
CERT_FILE = "peer_cert.pem"
#: The certificate only carries the key; TLS validity is not what proves the peer.
CERT_LIFETIME = datetime.timedelta(days=3650)
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def peer_id_of(public_key: bytes) -> str:
    """base32 (uppercase, unpadded, 52 chars) of SHA-256 of the raw Ed25519 public key."""
    return peer_id_for(public_key)


def short_id(peer_id: str) -> str:
    """The display form of a peer_id."""
    return peer_id[:8]


def raw_public_key(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(*_RAW)


def peer_id_of_certificate(cert: x509.Certificate) -> str | None:
    """The peer_id a TLS certificate proves, or None when it is not an Ed25519 certificate."""
    key = cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        return None
    return peer_id_of(raw_public_key(key))


def verify_signature(public_key: bytes, signature: bytes, data: bytes) -> bool:
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


class IdentityError(LanpeerError):
    """The identity files in the state dir are unusable."""

    code = "bad_identity"


@dataclass(frozen=True)
class Identity:
    private_key: ed25519.Ed25519PrivateKey
    certificate: x509.Certificate

    @property
    def public_key(self) -> bytes:
        return raw_public_key(self.private_key.public_key())

    @property
    def peer_id(self) -> str:
        return peer_id_of(self.public_key)

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)

    @classmethod
    def generate(cls) -> Identity:
        key = ed25519.Ed25519PrivateKey.generate()
        return cls(key, _self_signed(key))

    @classmethod
    def load_or_create(cls, state_dir: Path) -> Identity:
        """Load the identity from ``state_dir``, creating and persisting it on first use."""
        key_path, cert_path = state_dir / KEY_FILE, state_dir / CERT_FILE
        if key_path.exists():
            return cls._load(key_path, cert_path)
        identity = cls.generate()
        state_dir.mkdir(parents=True, exist_ok=True)
        _write_private(key_path, identity._key_pem())
        _write_private(cert_path, identity.certificate.public_bytes(serialization.Encoding.PEM))
        return identity

    @classmethod
    def _load(cls, key_path: Path, cert_path: Path) -> Identity:
        """The key is the identity; a missing, damaged or foreign certificate is remade."""
        try:
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise IdentityError(
                f"{key_path} is damaged ({exc}); move it away to create a new identity "
                "(peers will then see a new peer_id)"
            ) from exc
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise IdentityError(f"{key_path} is not an Ed25519 key; move it away to make a new one")
        cert = _load_cert(cert_path)
        if cert is None or peer_id_of_certificate(cert) != peer_id_of(
            raw_public_key(key.public_key())
        ):
            cert = _self_signed(key)
            _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, cert)

    def _key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _self_signed(key: ed25519.Ed25519PrivateKey) -> x509.Certificate:
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, peer_id_of(raw_public_key(key.public_key())))]
    )
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + CERT_LIFETIME)
        .sign(key, algorithm=None)
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write via a 0600 temp file and rename, so a crash never leaves a half key."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
