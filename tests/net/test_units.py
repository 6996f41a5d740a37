"""Pure parts of the peer network: identity files, bulk secrets, the peer table, names, MTU."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from lanpeer_proto.handshake import bulk_proof, peer_id_for
from lanpeer_proto.messages import BulkHello, GameSummary, LibraryDelta, LibrarySnapshot

from lanpeer.net.bulk import BulkSecrets
from lanpeer.net.discovery import instance_name
from lanpeer.net.handshake import RemoteFacts
from lanpeer.net.identity import CERT_FILE, KEY_FILE, Identity, IdentityError, peer_id_of
from lanpeer.net.mtu import datagram_size_for, interface_mtu
from lanpeer.net.peers import PeerTable


def test_identity_persists_with_private_modes(tmp_path: Path) -> None:
    first = Identity.load_or_create(tmp_path / "state")
    again = Identity.load_or_create(tmp_path / "state")
    assert again.peer_id == first.peer_id
    assert len(first.peer_id) == 52
    assert first.peer_id == peer_id_for(first.public_key) == peer_id_of(first.public_key)
    for name in (KEY_FILE, CERT_FILE):
        assert stat.S_IMODE((tmp_path / "state" / name).stat().st_mode) == 0o600


def test_lost_certificate_is_remade_for_the_same_key(tmp_path: Path) -> None:
    first = Identity.load_or_create(tmp_path)
    (tmp_path / CERT_FILE).write_text("not a certificate")
    assert Identity.load_or_create(tmp_path).peer_id == first.peer_id
    (tmp_path / CERT_FILE).unlink()
    assert Identity.load_or_create(tmp_path).peer_id == first.peer_id


def test_damaged_key_is_a_clear_error_and_is_kept(tmp_path: Path) -> None:
    Identity.load_or_create(tmp_path)
    (tmp_path / KEY_FILE).write_text("garbage")
    with pytest.raises(IdentityError, match="move it away"):
        Identity.load_or_create(tmp_path)
    assert (tmp_path / KEY_FILE).read_text() == "garbage"  # nothing overwritten


def test_bulk_secrets_bound_to_both_peers_the_nonce_and_expiring() -> None:
    alice, bob, server = (Identity.generate().peer_id for _ in range(3))
    secrets = BulkSecrets(server, ttl=60)
    secret = secrets.issue(alice)
    nonce, other_nonce = os.urandom(32), os.urandom(32)

    def hello(
        peer_id: str, nonce: bytes, server_id: str = server, key: bytes = secret
    ) -> BulkHello:
        return BulkHello(peer_id=peer_id, proof=bulk_proof(key, nonce, peer_id, server_id))

    assert secrets.check(hello(alice, nonce), nonce)
    assert not secrets.check(hello(alice, nonce), other_nonce)  # a replay under a new nonce
    assert not secrets.check(hello(bob, nonce), nonce)  # another peer with alice's secret
    assert not secrets.check(hello(alice, nonce, server_id=bob), nonce)  # made for another server
    assert not secrets.check(hello(alice, nonce, key=bytes(32)), nonce)
    secrets.revoke(alice)
    assert not secrets.check(hello(alice, nonce), nonce)
    expired = BulkSecrets(server, ttl=0)
    assert not expired.check(hello(alice, nonce, key=expired.issue(alice)), nonce)


def _game(game_id: str) -> GameSummary:
    return GameSummary(id=game_id, name=game_id, version="1", size=1, manifest_hash=bytes(32))


def _table_with_copy(peer_id: str) -> PeerTable:
    table = PeerTable()
    facts = RemoteFacts(peer_id, "p", "1.0", 47600, 3, bytes(32), frozenset())
    table.session_up(_ClosedLink(peer_id), facts, ("10.0.0.1", 47600))  # type: ignore[arg-type]
    snapshot = LibrarySnapshot(library_rev=3, library_digest=b"a" * 32, games=[_game("quake")])
    assert table.apply_snapshot(peer_id, snapshot)
    return table


class _ClosedLink:
    def __init__(self, peer_id: str) -> None:
        self.peer_id = peer_id
        self.is_open = False
        self.last_seen = 0.0


def test_delta_that_does_not_follow_our_rev_is_refused() -> None:
    peer = Identity.generate().peer_id
    table = _table_with_copy(peer)
    late = LibraryDelta(from_rev=4, to_rev=5, library_digest=b"b" * 32, added=[_game("doom")],
                        updated=[], removed=[])  # fmt: skip
    assert not table.apply_delta(peer, late)
    good = late.model_copy(update={"from_rev": 3})
    assert table.apply_delta(peer, good)
    record = table.get(peer)
    assert record is not None
    assert set(record.games) == {"quake", "doom"}
    assert record.library_rev == 5


def test_expire_drops_only_silent_disconnected_peers() -> None:
    peer = Identity.generate().peer_id
    table = _table_with_copy(peer)
    record = table.get(peer)
    assert record is not None
    assert table.expire(record.last_seen + 5, stale_after=10) == []
    assert table.expire(record.last_seen + 11, stale_after=10) == [peer]
    assert table.get(peer) is None


def test_instance_names_are_unique_per_peer_and_dns_safe() -> None:
    a, b = Identity.generate().peer_id, Identity.generate().peer_id
    assert instance_name("LAN party!", a) != instance_name("LAN party!", b)
    assert instance_name("LAN party!", a).startswith("LAN-party-")
    assert instance_name("", a).startswith("peer-")


def test_datagram_size_follows_the_link() -> None:
    assert datagram_size_for("127.0.0.1") == 16384
    assert datagram_size_for("127.0.0.1", 1452) == 1452
    assert interface_mtu("not-an-address") == 1500
