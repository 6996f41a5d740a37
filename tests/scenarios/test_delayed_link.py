"""A download completes over a slow-RTT link (netns lab only; userspace delay line).

Scenario: every frame to and from leecher l is held 20 ms by a delay line in the switch
namespace (40 ms RTT; tc netem is not in this kernel). l connects to seeder s, downloads a
4 MiB game, and the copy is byte-identical to the seeder's.
"""

from __future__ import annotations

import pytest

from tests.scenarios.gamefiles import seed, tree_hash
from tests.scenarios.harness import finished_line

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)


def test_download_over_delayed_link(world, game) -> None:
    lan = world(2)
    lan.require_lab("a delay line")
    s, leecher = lan.add("s"), lan.add("l")
    seed(s.games, game("outlaws", 4))
    lan.delay(leecher, 20)
    lan.start()
    leecher.wait_sees_game("outlaws")

    result = finished_line(leecher.download_waiting("outlaws"), timeout=60)
    assert result["ok"], result
    assert tree_hash(leecher.games / "outlaws") == tree_hash(s.games / "outlaws")
