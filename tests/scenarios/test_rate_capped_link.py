"""A download over a rate-capped link completes and respects the link (netns lab only).

Scenario: the switch port toward leecher l is shaped with ``tc tbf`` to 32 Mbit/s (4 MB/s).
An 8 MiB game from seeder s finishes ok, byte-identical, and no faster than the link allows
(here the timing is the behaviour: a copy quicker than the cap would mean the cap was not on
the path).
"""

from __future__ import annotations

import pytest

from tests.scenarios.gamefiles import seed, tree_hash
from tests.scenarios.harness import finished_line

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)

CAP_BYTES_PER_S = 4_000_000


def test_rate_capped_link(world, game) -> None:
    lan = world(2)
    lan.require_lab("a tbf rate cap")
    s, leecher = lan.add("s"), lan.add("l")
    source = seed(s.games, game("daikatana", 8))
    lan.start()
    leecher.wait_sees_game("daikatana")
    lan.rate(leecher, "32mbit")

    result = finished_line(leecher.download_waiting("daikatana"), timeout=60)
    assert result["ok"], result
    size = sum(p.stat().st_size for p in source.iterdir() if p.is_file())
    # tbf allows a 256 kB burst; anything much faster than size/cap never crossed the cap.
    assert result["seconds"] >= 0.8 * size / CAP_BYTES_PER_S, result
    assert tree_hash(leecher.games / "daikatana") == tree_hash(source)
