"""A download from two seeders survives one seeder being SIGKILLed midway.

Scenario: seeders s1 and s2 hold the same 24 MiB game, each capped at 6 MB/s upload so the
transfer takes a few seconds. Leecher l starts downloading from both; once a quarter of the
bytes are verified, s1 is killed with SIGKILL (no Goodbye). The download still finishes from
s2 alone: ok, both seeders were used, and l's copy is byte-identical to the seeders'.
"""

from __future__ import annotations

import signal

import pytest

from tests.scenarios.gamefiles import leftovers, seed, tree_hash
from tests.scenarios.harness import finished_line

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)


def test_download_finishes_from_the_surviving_seeder(world, game) -> None:
    lan = world(3)
    capped = ["--max-upload", "6MB/s"]
    s1, s2, leecher = lan.add("s1", extra=capped), lan.add("s2", extra=capped), lan.add("l")
    for seeder in (s1, s2):
        seed(seeder.games, game("arena", 24))
    lan.start()
    leecher.wait_sees_game("arena", offered_by=2)

    events = leecher.watch()
    done = leecher.download_waiting("arena")
    leecher.wait_progress(events, "arena", 0.25)
    s1.signal(signal.SIGKILL)

    result = finished_line(done, timeout=90)
    assert result["ok"], result
    assert len(result["peers_used"]) == 2, result
    assert tree_hash(leecher.games / "arena") == tree_hash(s2.games / "arena")
    assert leftovers(leecher.games / "arena") == []
