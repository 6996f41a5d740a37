"""A download survives a network partition that heals (netns lab only).

Scenario: the link toward leecher l is capped at 40 Mbit/s so a 12 MiB download takes a few
seconds. Midway l's switch port is cut; once l's progress is seen standing still, the port
is healed. The download then finishes ok and l's copy is byte-identical to the seeder's.
"""

from __future__ import annotations

import pytest

from tests.scenarios.gamefiles import leftovers, seed, tree_hash
from tests.scenarios.harness import finished_line, wait_until

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)


def test_partition_then_heal(world, game) -> None:
    lan = world(2)
    lan.require_lab("cutting a link")
    s, leecher = lan.add("s"), lan.add("l")
    seed(s.games, game("rune", 12))
    lan.start()
    leecher.wait_sees_game("rune")
    lan.rate(leecher, "40mbit")

    events = leecher.watch()
    done = leecher.download_waiting("rune")
    leecher.wait_progress(events, "rune", 0.2)
    lan.cut(leecher)
    seen: list[int] = []

    def standing_still() -> bool:
        op = leecher.op("rune")
        seen.append(-1 if op is None else op["bytes_done"])
        return len(seen) >= 2 and seen[-1] == seen[-2] and seen[-1] >= 0

    wait_until(standing_still, timeout=20, what="progress to stop while cut", interval=0.5)
    lan.heal(leecher)

    result = finished_line(done, timeout=90)
    assert result["ok"], result
    assert tree_hash(leecher.games / "rune") == tree_hash(s.games / "rune")
    assert leftovers(leecher.games / "rune") == []
