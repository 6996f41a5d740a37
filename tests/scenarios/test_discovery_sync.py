"""Three hosts discover each other over mDNS and sync, then one downloads and installs a game.

Scenario: hosts a, b and c each start with one different game and no configured peers (mDNS
only in the netns lab; static peers on loopback). Every host sees every other host and the
merged library of all three games. Then c downloads a's game with install: c's copy is
byte-identical to a's, it is installed (``local/`` exists), and no download scratch is left.
"""

from __future__ import annotations

import pytest

from tests.scenarios.gamefiles import leftovers, seed, tree_hash
from tests.scenarios.harness import finished_line, wait_until

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)


def test_three_hosts_discover_sync_and_download(world, game) -> None:
    lan = world(3, discovery="mdns")
    hosts = [lan.add(name) for name in ("a", "b", "c")]
    for host, game_id in zip(hosts, ("quake", "doom", "hexen"), strict=True):
        seed(host.games, game(game_id, 2))
    lan.start()

    for host in hosts:
        wait_until(lambda h=host: len([p for p in h.peers() if p["connected"]]) == 2,
                   timeout=30, what=f"{host.name} to see both other hosts")  # fmt: skip
        for game_id in ("quake", "doom", "hexen"):
            host.wait_sees_game(game_id, offered_by=0 if host.games.joinpath(game_id).exists()
                                else 1)  # fmt: skip

    a, _, c = hosts
    done = c.download_waiting("quake", install=True)
    result = finished_line(done, timeout=60)
    assert result["ok"], result
    assert tree_hash(c.games / "quake") == tree_hash(a.games / "quake")
    assert (c.games / "quake" / "local").is_dir()
    assert leftovers(c.games / "quake") == []
    entry = c.game("quake")
    assert entry is not None
    assert entry["downloaded"]
    assert entry["installed"]
