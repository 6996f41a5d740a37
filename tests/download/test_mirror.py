"""The pure parts of `download --all` / `follow` and version variants: which games, in which
order, how many fit, which content of a version (the daemon scenarios: tests/cli)."""

from __future__ import annotations

import pytest
from lanpeer_proto.messages import GameSummary

from lanpeer.download.mirror import (
    choose_variant,
    disputed_versions,
    find_peer,
    fitting,
    mirror_picks,
    variants,
)
from lanpeer.errors import UnknownGameError, UnknownPeerError
from tests.download.test_autoupdate import Local, Peer

MIB = 1 << 20


def game(game_id: str, version: str, size: int, digest: int = 1) -> GameSummary:
    return GameSummary(
        id=game_id, name=game_id.title(), version=version, manifest_hash=bytes([digest]) * 32,
        size=size,
    )  # fmt: skip


A = Peer("AAAA1", {"big": game("big", "1", 50 * MIB), "tiny": game("tiny", "1", MIB),
                   "mid": game("mid", "2", 9 * MIB), "have": game("have", "1.0", MIB)})  # fmt: skip
B = Peer("BBBB1", {"mid": game("mid", "3", 10 * MIB), "only-b": game("only-b", "1", MIB)})
C = Peer("CCCC1", {"mid": game("mid", "3", 10 * MIB, digest=2)}, connected=False)


def test_picks_are_what_this_host_lacks_or_has_older_smallest_first() -> None:
    local = [Local("have", "1.0"), Local("mid", "1")]
    picks = mirror_picks(local, [A, B, C])
    assert [(p.game_id, p.summary.version, p.peer_id) for p in picks] == [
        ("only-b", "1", "BBBB1"),
        ("tiny", "1", "AAAA1"),
        ("mid", "3", "BBBB1"),  # the newest of two offers; C is not connected
        ("big", "1", "AAAA1"),
    ]


def test_picks_from_one_peer_with_a_match_and_pins() -> None:
    picks = mirror_picks([], [A, B], from_peer="AAAA1", match="I", pins={"tiny": "0.9"})
    assert [p.game_id for p in picks] == ["mid", "big"]  # "I" matches mId and bIg, not have


def test_fitting_counts_sizes_once_more_when_installed_and_one_margin() -> None:
    picks = mirror_picks([], [A])  # tiny 1, have 1, mid 9, big 50 MiB
    assert fitting(picks, 75 * MIB, 64 * MIB, install=False) == 3
    assert fitting(picks, 75 * MIB, 64 * MIB, install=True) == 2
    assert fitting(picks, 63 * MIB, 64 * MIB, install=False) == 0
    assert fitting(picks, 200 * MIB, 64 * MIB, install=False) == 4


def test_find_peer_by_id_prefix_or_name() -> None:
    names = {"AAAA1": "alpha", "BBBB1": "beta"}
    assert find_peer([A, B], "beta", names) == "BBBB1"
    assert find_peer([A, B], "AAA", names) == "AAAA1"
    with pytest.raises(UnknownPeerError, match="no known peer"):
        find_peer([A, B], "zzz", names)
    twins = [Peer("AB1", {}), Peer("AB2", {})]
    with pytest.raises(UnknownPeerError, match="names 2 peers"):
        find_peer(twins, "AB", {})


def test_variants_the_most_sources_win_unless_one_is_named() -> None:
    peers = [
        Peer("P1", {"g": game("g", "1.0", MIB, digest=1)}),
        Peer("P2", {"g": game("g", "1.0", MIB, digest=1)}),
        Peer("P3", {"g": game("g", "1.0", 2 * MIB, digest=2)}),
        Peer("P4", {"g": game("g", "0.9", MIB, digest=3)}),
    ]
    found = variants(peers, "g")
    assert [(v.version, v.peers) for v in found] == [
        ("1.0", ("P1", "P2")),
        ("1.0", ("P3",)),
        ("0.9", ("P4",)),
    ]
    assert disputed_versions(found) == {"1.0"}
    assert choose_variant(found).peers == ("P1", "P2")
    assert choose_variant(found, from_peer="P3").manifest_hash == bytes([2]) * 32
    assert choose_variant(found, variant="0303").version == "0.9"
    assert choose_variant(found, version="0.9").peers == ("P4",)
    with pytest.raises(UnknownGameError, match="variant ff"):
        choose_variant(found, variant="ff")
