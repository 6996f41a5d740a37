"""A peer that restarts with a new address is updated in place, not duplicated.

Scenario: a seeds a game, b knows a. b stops, gets a new address (a new IP in the netns lab; a
new port on loopback), and starts again. a lists b exactly once, with the
same peer_id and the new address, and b can still download a's game.
"""

from __future__ import annotations

import pytest

from tests.scenarios.gamefiles import seed, tree_hash
from tests.scenarios.harness import finished_line, wait_until

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)


def test_restart_with_new_address(world, game) -> None:
    lan = world(2)
    a, b = lan.add("a"), lan.add("b")
    seed(a.games, game("heretic", 2))
    lan.start()
    b_id = b.status()["peer_id"]
    wait_until(lambda: any(p["peer_id"] == b_id and p["connected"] for p in a.peers()),
               timeout=30, what="a to see b")  # fmt: skip

    b.stop()
    new_listen = lan.readdress(b)
    lan.restart(b)
    assert b.status()["listen"] == new_listen

    def updated() -> list[dict] | None:
        entries = [p for p in a.peers() if p["peer_id"] == b_id]
        return entries if entries and entries[0]["address"] == new_listen else None

    try:
        entries = wait_until(updated, timeout=30, what=f"a to see b at {new_listen}")
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\na peers: {a.peers()}\n{a.log_tail(15)}\nb peers: {b.peers()}\n{b.log_tail(15)}"
        ) from None
    assert len(entries) == 1, entries
    assert entries[0]["connected"]

    b.wait_sees_game("heretic")
    result = finished_line(b.download_waiting("heretic"), timeout=60)
    assert result["ok"], result
    assert tree_hash(b.games / "heretic") == tree_hash(a.games / "heretic")
