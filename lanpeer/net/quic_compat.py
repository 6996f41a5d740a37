"""The aioquic internals lanpeer needs and aioquic has no public API for, in one place.

Owns reading five private fields of ``aioquic.quic.connection.QuicConnection`` (peer
certificate, unacknowledged stream bytes, close state, received flow-control credit, smoothed
round-trip time).
``tests/net/test_quic_compat.py`` fails loudly when an aioquic upgrade moves any of them.
Never writes to aioquic state.
"""

from __future__ import annotations

from aioquic.quic.connection import QuicConnection
from cryptography import x509


def peer_certificate(quic: QuicConnection) -> x509.Certificate | None:
    """The validated TLS leaf of the peer (the TLS context keeps it once the handshake ran)."""
    cert: x509.Certificate | None = quic.tls._peer_certificate
    return cert


def unacked_bytes(quic: QuicConnection, stream_id: int) -> int:
    """Bytes queued on a stream and not yet acknowledged (aioquic has no send backpressure)."""
    stream = quic._streams.get(stream_id)
    if stream is None:
        return 0
    sender = stream.sender
    return int(sender._buffer_stop - sender._buffer_start)


def is_closing(quic: QuicConnection) -> bool:
    """Either side sent CONNECTION_CLOSE: aioquic reports the end only after draining (3 PTO)."""
    return quic._close_event is not None


def received_credit(quic: QuicConnection) -> int:
    """Connection flow-control credit the peer has used: the sum of every stream's highest
    received offset, hence an upper bound on what aioquic buffers for it, gaps included."""
    return int(quic._local_max_data.used)


def smoothed_rtt(quic: QuicConnection) -> float | None:
    """The connection's smoothed RTT in seconds (RFC 9002 5.3), None before the first sample.
    aioquic computes it for loss recovery and exposes it only in its qlog events."""
    loss = quic._loss
    if not loss._rtt_initialized:
        return None
    return float(loss._rtt_smoothed)
