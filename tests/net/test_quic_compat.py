"""The aioquic internals lanpeer reads (lanpeer.net.quic_compat) on a real, in-memory pair of
QuicConnections: this fails loudly when an aioquic upgrade renames or changes them."""

from __future__ import annotations

from pathlib import Path

import aioquic
from aioquic.quic.connection import QuicConnection
from cryptography import x509

from lanpeer.net import quic_compat
from lanpeer.net.identity import Identity, peer_id_of_certificate
from lanpeer.net.quic import QuicSettings, _configuration

SERVER_ADDR = ("127.0.0.1", 4433)
CLIENT_ADDR = ("127.0.0.1", 50000)


class _Clock:
    now = 1000.0


def _pump(client: QuicConnection, server: QuicConnection) -> None:
    """Move datagrams both ways, letting time pass (delayed ACKs), until both go quiet."""
    for _ in range(50):
        moved = False
        for conn, other, source in ((client, server, CLIENT_ADDR), (server, client, SERVER_ADDR)):
            timer = conn.get_timer()
            if timer is not None and timer <= _Clock.now:
                conn.handle_timer(now=_Clock.now)
            for data, _addr in conn.datagrams_to_send(now=_Clock.now):
                other.receive_datagram(data, source, now=_Clock.now)
                moved = True
        _Clock.now += 0.03
        if not moved:
            return
    raise AssertionError("the pair never went quiet")


def test_the_private_fields_lanpeer_reads_still_mean_what_it_assumes(tmp_path: Path) -> None:
    identity = Identity.load_or_create(tmp_path)
    settings = QuicSettings()
    server_config = _configuration(False, 1200, settings)
    server_config.certificate = identity.certificate
    server_config.private_key = identity.private_key
    client_config = _configuration(True, 1200, settings)
    client_config.server_name = "lanpeer"
    client = QuicConnection(configuration=client_config)
    assert quic_compat.smoothed_rtt(client) is None  # no sample before the first ACK
    client.connect(SERVER_ADDR, now=_Clock.now)
    first = client.datagrams_to_send(now=_Clock.now)
    original = client.original_destination_connection_id
    server = QuicConnection(
        configuration=server_config, original_destination_connection_id=original
    )
    for data, _addr in first:
        server.receive_datagram(data, CLIENT_ADDR, now=_Clock.now)
    _pump(client, server)
    where = f"aioquic {aioquic.__version__}"

    rtt = quic_compat.smoothed_rtt(client)  # sampled from the handshake's acknowledgements
    assert rtt is not None, where
    assert 0 < rtt < 1.0, (where, rtt)

    cert = quic_compat.peer_certificate(client)  # the server's leaf, on the client
    assert isinstance(cert, x509.Certificate), where
    assert peer_id_of_certificate(cert) == identity.peer_id, where

    stream_id = client.get_next_available_stream_id()
    client.send_stream_data(stream_id, b"x" * 5000)
    assert quic_compat.unacked_bytes(client, stream_id) == 5000, where  # queued, not acked
    _pump(client, server)
    assert quic_compat.unacked_bytes(client, stream_id) == 0, where  # acknowledged
    assert quic_compat.unacked_bytes(client, stream_id + 4) == 0, where  # no such stream

    assert quic_compat.received_credit(server) >= 5000, where  # counted on the receiver

    assert not quic_compat.is_closing(server), where
    client.close(reason_phrase="test")
    assert quic_compat.is_closing(client), where  # our side closed
    _pump(client, server)
    assert quic_compat.is_closing(server), where  # the peer's close arrived
