"""A leecher killed mid-download resumes after restart instead of starting over.

Scenario: seeder s (upload capped at 4 MB/s) serves a 20 MiB game; leecher l is SIGKILLed
once 40 % is verified. After restart l does not show the game as downloaded (no ``version.ini``),
a new download resumes (its first progress already counts verified bytes), finishes ok, and the
copy is byte-identical to the seeder's with no scratch left.
"""

from __future__ import annotations

import signal

import pytest

from tests.scenarios.gamefiles import leftovers, seed, tree_hash
from tests.scenarios.harness import finished_line

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)


def test_crash_mid_download_then_resume(world, game) -> None:
    lan = world(2)
    s, leecher = lan.add("s", extra=["--max-upload", "4MB/s"]), lan.add("l")
    seed(s.games, game("unreal", 20))
    lan.start()
    leecher.wait_sees_game("unreal")

    events = leecher.watch()
    leecher.download("unreal")
    leecher.wait_progress(events, "unreal", 0.4)
    leecher.signal(signal.SIGKILL)
    events.close()

    lan.restart(leecher)
    game_dir = leecher.games / "unreal"
    assert not (game_dir / "version.ini").exists()
    entry = leecher.wait_sees_game("unreal")
    assert not entry["downloaded"]

    events = leecher.watch()
    done = leecher.download_waiting("unreal")
    first = events.wait_event(lambda e: e.get("event") == "progress", 30, "first progress")
    result = finished_line(done, timeout=60)
    assert result["ok"], result
    assert first["bytes_done"] > 0, f"download started over instead of resuming: {first}"
    assert tree_hash(game_dir) == tree_hash(s.games / "unreal")
    assert leftovers(game_dir) == []
