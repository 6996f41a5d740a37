"""A leecher killed mid-download resumes after restart instead of starting over.

Scenario: seeder s (upload capped at 4 MB/s) serves a 20 MiB game; leecher l is SIGKILLed
once 40 % is verified. While l is down its game dir holds no ``version.ini``. l restarts with no
source to continue from: the daemon resumes the staged download on its own (SPEC §7) and waits,
``stalled``, for one. Only once ``watch`` is subscribed (the daemon counts it) is l given the
seeder back (``add-peer``), so the whole resumed run is seen however slow the machine is. The
run finishes ok having fetched less than the game (the rest was kept from before the crash),
and the copy is byte-identical to the seeder's with no scratch left.
"""

from __future__ import annotations

import signal

import pytest

from tests.scenarios.gamefiles import leftovers, seed, tree_hash
from tests.scenarios.harness import Peer, wait_until

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)

MiB = 1 << 20


def test_crash_mid_download_then_resume(world, game) -> None:
    lan = world(2)
    s, leecher = lan.add("s", extra=["--max-upload", "4MB/s"]), lan.add("l")
    seed(s.games, game("unreal", 20))
    lan.start()
    leecher.wait_sees_game("unreal")

    events = leecher.watch()
    wait_subscribed(leecher)
    leecher.download("unreal")
    leecher.wait_progress(events, "unreal", 0.4)
    leecher.signal(signal.SIGKILL)
    events.close()

    leecher.stop()  # reaps the killed daemon
    game_dir = leecher.games / "unreal"
    assert not (game_dir / "version.ini").exists(), "finished before the kill: nothing to resume"
    leecher.static_peers = []  # no source until the test gives it one, below
    leecher.start()
    what = "the staged download to resume on its own and wait for a source"
    resumed = wait_until(lambda: stalled(leecher, "unreal"), timeout=30, what=what)
    entry = leecher.game("unreal")
    assert entry is None or not entry["downloaded"], (entry, resumed)

    events = leecher.watch()
    wait_subscribed(leecher)
    leecher.cli("add-peer", s.listen)
    done = events.wait_event(
        lambda e: e.get("event") == "finished" and e.get("game_id") == "unreal", 60, "finished"
    )
    assert done["ok"], done
    assert done["bytes"] >= 20 * MiB, done  # the whole game (and its small metadata files)
    print(f"resumed run fetched {done['bytes_fetched']} of {done['bytes']} bytes")
    assert 0 < done["bytes_fetched"] < done["bytes"], f"started over instead of resuming: {done}"
    assert tree_hash(game_dir) == tree_hash(s.games / "unreal")
    assert leftovers(game_dir) == []


def wait_subscribed(peer: Peer) -> None:
    """Until the daemon counts a subscriber: a ``watch`` started before misses nothing after."""
    wait_until(lambda: peer.status()["subscribers"] >= 1, timeout=30,
               what=f"{peer.name}'s watch to subscribe")  # fmt: skip


def stalled(peer: Peer, game_id: str) -> dict[str, object] | None:
    op = peer.op(game_id)
    return op if op is not None and op["state"] == "stalled" else None
