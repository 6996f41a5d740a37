"""The merged library document (issue 13): installed vs downloaded, sources, variants, updates."""

from __future__ import annotations

from lanpeer.control import views
from tests.seams.recorders import local_game, peer, summary


def test_sources_and_variants_of_one_version_string() -> None:
    peers = [
        peer("A", summary("doom", "1.0", manifest_hash=b"a" * 32)),
        peer("B", summary("doom", "1.0", manifest_hash=b"b" * 32)),  # same string, other bytes
        peer("C", summary("doom", "1.1", manifest_hash=None)),  # still hashing
    ]
    (game,) = views.merge_games([], peers, set())
    assert [(s.peer_id, s.version, s.manifest_hash) for s in game.sources] == [
        ("A", "1.0", "61" * 32), ("B", "1.0", "62" * 32), ("C", "1.1", None)
    ]  # fmt: skip
    assert [(v.version, v.peers) for v in game.variants] == [("1.0", ["A"]), ("1.0", ["B"])]
    (single,) = views.merge_games([], peers[:1], set())
    assert single.variants == []


def test_update_available_compares_with_what_is_in_use() -> None:
    offers = [peer("A", summary("doom", "1.0"))]
    installed = local_game("doom", installed=True)  # downloaded 1.0 (the recorder's default)
    (old_install,) = views.merge_games([installed], offers, set(), {"doom": "0.9"})
    assert (old_install.installed_version, old_install.update_available) == ("0.9", True)
    (current,) = views.merge_games([installed], offers, set(), {"doom": "1.0"})
    assert current.update_available is False
    assert views.update_available(None, None, "2.0") is False  # nothing here to update


def test_a_game_being_hashed_here_shows_how_far() -> None:
    from dataclasses import replace

    hashing = replace(local_game("doom"), manifest_hash=None, hashed_bytes=30, hash_total=120)
    (game,) = views.merge_games([hashing], [], set())
    assert (game.state, game.hashed_bytes, game.hash_total) == ("hashing", 30, 120)


def test_a_peers_round_trip_time_shows_in_milliseconds() -> None:
    near = views.peer_entry(peer("A", rtt=0.000_42))
    assert near.rtt_ms == 0.42
    assert '"rtt_ms":0.42' in near.model_dump_json()  # what `peer-cli peers --json` prints
    assert views.peer_entry(peer("B")).rtt_ms is None  # not connected or not measured yet
