"""Three hosts that start with empty libraries find each other over mDNS alone, then sync.

Scenario (mDNS only in the netns lab; static peers on loopback): hosts a, b and c start with
no games and no configured peers; every host connects to both others. Then a game appears on
a (copied in, listed in the catalog, ``rescan``): b and c list it as offered by a, and c
downloads it byte-identical. (Starting with games is ``test_discovery_sync.py``.)
"""

from __future__ import annotations

import pytest

from tests.scenarios.gamefiles import seed, tree_hash
from tests.scenarios.harness import finished_line, wait_until

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)


def test_three_empty_hosts_discover_over_mdns(world, game) -> None:
    lan = world(3, discovery="mdns")
    a, b, c = hosts = [lan.add(name) for name in ("a", "b", "c")]
    lan.start()
    for host in hosts:
        wait_until(lambda h=host: sum(p["connected"] for p in h.peers()) == 2,
                   timeout=30, what=f"{host.name} to see both other hosts")  # fmt: skip

    seed(a.games, game("wolf3d", 1))
    a.cli("rescan")
    a_id = a.wait_advertising()["peer_id"]
    for host in (b, c):
        assert host.wait_sees_game("wolf3d")["peers"] == [a_id]
    result = finished_line(c.download_waiting("wolf3d"), timeout=60)
    assert result["ok"], result
    assert tree_hash(c.games / "wolf3d") == tree_hash(a.games / "wolf3d")
