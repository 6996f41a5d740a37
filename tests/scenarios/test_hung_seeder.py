"""A seeder that hangs (SIGSTOP, sockets still open) mid-transfer and then wakes up.

Scenario: seeder s (upload capped at 4 MB/s) serves a 12 MiB game to leecher l. At 30 % the
seeder's daemon is stopped with SIGSTOP; l's progress is seen standing still, and l's daemon
keeps answering. After SIGCONT the download finishes ok and byte-identical.
"""

from __future__ import annotations

import signal

import pytest

from tests.scenarios.gamefiles import leftovers, seed, tree_hash
from tests.scenarios.harness import finished_line, wait_until

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)


def test_hung_seeder_wakes_up(world, game) -> None:
    lan = world(2)
    s, leecher = lan.add("s", extra=["--max-upload", "4MB/s"]), lan.add("l")
    seed(s.games, game("shogo", 12))
    lan.start()
    leecher.wait_sees_game("shogo")

    events = leecher.watch()
    done = leecher.download_waiting("shogo")
    leecher.wait_progress(events, "shogo", 0.3)
    s.signal(signal.SIGSTOP)
    seen: list[int] = []

    def standing_still() -> bool:
        op = leecher.op("shogo")
        seen.append(-1 if op is None else op["bytes_done"])
        return len(seen) >= 2 and seen[-1] == seen[-2] and seen[-1] >= 0

    wait_until(standing_still, timeout=20, what="progress to stop while s is hung", interval=0.5)
    s.signal(signal.SIGCONT)

    result = finished_line(done, timeout=90)
    assert result["ok"], result
    assert tree_hash(leecher.games / "shogo") == tree_hash(s.games / "shogo")
    assert leftovers(leecher.games / "shogo") == []
