"""Cancelling a download mid-transfer stops it at once and leaves nothing behind.

Scenario: seeder s (upload capped at 2 MB/s) serves a 16 MiB game; leecher l starts a download
and, once bytes are flowing, cancels it. Behaviour (SPEC §7): the transfer stops within 250 ms,
the operation ends with ok=false, no operation is left, the game is not downloaded and the game
dir holds no download scratch.

How "within 250 ms" is timed: ``cancel`` answers only once the operation has stopped and its
staging is gone, so its round trip on the control socket is the daemon's stop time plus what any
request costs the daemon at that moment. That cost is measured in the same test, around the
cancel: ``status`` round trips on the same socket, the worst of them. Idle, it is a few ms and
the bound is ~250 ms; on a loaded machine each turn of the daemon's loop costs more and the bound
grows by what was measured, never by a fixed allowance. (peer-cli is not timed: its own start-up
on a busy 2-core machine varies by seconds and says nothing about the daemon.)
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lanpeer_cli.client import ControlClient
from lanpeer_proto.control import CancelRequest, ResultMessage, StatusRequest

from tests.scenarios.gamefiles import leftovers, seed

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)

CANCEL_BUDGET = 0.25  # SPEC §7
#: Turns of the daemon's loop a cancel takes beyond a ``status``: cancelling the transfer's
#: tasks, the worker thread that deletes the staging, publishing ``finished``, the answer.
CANCEL_TURNS = 4
#: ``status`` round trips before and after the cancel; the worst is the request cost.
CALIBRATION_SAMPLES = 5


def test_cancel_mid_transfer_is_quick_and_clean(world, game) -> None:
    lan = world(2)
    s, leecher = lan.add("s", extra=["--max-upload", "2MB/s"]), lan.add("l")
    seed(s.games, game("tribes", 16))
    lan.start()
    leecher.wait_sees_game("tribes")

    events = leecher.watch()
    leecher.download("tribes")
    leecher.wait_progress(events, "tribes", 0.01)

    before = [round_trip(leecher.socket, StatusRequest()) for _ in range(CALIBRATION_SAMPLES)]
    cancel = round_trip(leecher.socket, CancelRequest(game_id="tribes"))
    assert leecher.op("tribes") is None  # the answer came after the operation ended
    after = [round_trip(leecher.socket, StatusRequest()) for _ in range(CALIBRATION_SAMPLES)]

    request_cost = max(before + after)
    bound = CANCEL_BUDGET + CANCEL_TURNS * request_cost
    print(f"cancel took {cancel * 1000:.0f} ms; status {min(before + after) * 1000:.1f}-"
          f"{request_cost * 1000:.1f} ms; bound {bound * 1000:.0f} ms")  # fmt: skip
    assert cancel <= bound, (cancel, before, after)
    finished = events.wait_event(
        lambda e: e.get("event") == "finished" and e.get("game_id") == "tribes", 10, "finished"
    )
    assert not finished["ok"]
    entry = leecher.game("tribes")
    assert entry is not None
    assert not entry["downloaded"]
    game_dir = leecher.games / "tribes"
    assert not (game_dir / "version.ini").exists()
    assert leftovers(game_dir) == []
    assert not game_dir.exists() or not any(game_dir.glob("*.eti"))


def round_trip(socket: Path, request: StatusRequest | CancelRequest) -> float:
    """Seconds from sending ``request`` on an open control connection to its answer."""
    with ControlClient(socket) as client:
        started = time.monotonic()
        answer = client.ask(request)
        took = time.monotonic() - started
    assert isinstance(answer, ResultMessage), answer
    return took
