"""A download completes, verified, over links that drop 2 % of frames (netns lab only).

Scenario: the switch drops 2 % of the frames each host sends (nftables ``numgen random`` on the
bridge; mDNS spared). Leecher l downloads an 8 MiB game from seeder s, once over the default
(bulk) path and once with both daemons forced to ``--bulk quic``; both finish ok and the copies
are byte-identical to the seeder's.
"""

from __future__ import annotations

import pytest

from tests.scenarios.gamefiles import seed, tree_hash
from tests.scenarios.harness import finished_line

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)


@pytest.mark.parametrize("bulk", ["auto", "quic"])
def test_two_percent_loss(world, game, bulk: str) -> None:
    lan = world(2)
    lan.require_lab("packet loss")
    options = ["--bulk", bulk]
    s, leecher = lan.add("s", extra=options), lan.add("l", extra=options)
    seed(s.games, game("blood", 8))
    lan.start()
    leecher.wait_sees_game("blood")
    lan.loss(s, 2)
    lan.loss(leecher, 2)

    result = finished_line(leecher.download_waiting("blood"), timeout=120)
    assert result["ok"], result
    assert tree_hash(leecher.games / "blood") == tree_hash(s.games / "blood")
