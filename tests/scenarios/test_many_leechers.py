"""Eight leechers download the same small game from one seeder at once.

Scenario: seeder s holds a 3 MiB game; leechers l1..l8 each start ``download --wait`` at the
same time. Every download finishes ok from s, every copy is byte-identical to the seeder's,
and the seeder is still answering afterwards.
"""

from __future__ import annotations

import pytest

from tests.scenarios.gamefiles import leftovers, seed, tree_hash
from tests.scenarios.harness import finished_line, wait_until

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)


def test_eight_leechers_one_seeder(world, game) -> None:
    lan = world(9)
    s = lan.add("s")
    leechers = [lan.add(f"l{i}") for i in range(1, 9)]
    seed(s.games, game("descent", 3))
    lan.start()
    wait_until(lambda: sum(p["connected"] for p in s.peers()) == 8, timeout=60,
               what="the seeder to see all 8 leechers")  # fmt: skip
    for leecher in leechers:
        leecher.wait_sees_game("descent", timeout=30)

    waiting = [leecher.download_waiting("descent") for leecher in leechers]
    results = [finished_line(done, timeout=120) for done in waiting]

    expected = tree_hash(s.games / "descent")
    for leecher, result in zip(leechers, results, strict=True):
        assert result["ok"], (leecher.name, result)
        assert tree_hash(leecher.games / "descent") == expected, leecher.name
        assert leftovers(leecher.games / "descent") == []
    assert s.status()["name"] == "s"
