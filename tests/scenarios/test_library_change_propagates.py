"""A game added to a running seeder reaches an already connected peer.

Scenario: a and b start with empty libraries and connect. Then a game is copied into a's root
and listed in a's catalog, and a is told to ``rescan``. a's library_rev goes up and b, without
reconnecting, lists the game as offered by a (a library delta or snapshot crossed the session).
"""

from __future__ import annotations

import pytest

from tests.scenarios.gamefiles import seed
from tests.scenarios.harness import wait_until

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)


def test_added_game_reaches_connected_peer(world, game) -> None:
    lan = world(2)
    a, b = lan.add("a"), lan.add("b")
    lan.start()
    a_id = a.status()["peer_id"]
    wait_until(lambda: any(p["peer_id"] == a_id and p["connected"] for p in b.peers()),
               timeout=30, what="b to connect to a")  # fmt: skip

    seed(a.games, game("strife", 1))
    a.cli("rescan")
    a.wait_advertising(timeout=30)
    entry = b.wait_sees_game("strife", timeout=30)
    assert entry["peers"] == [a_id]
