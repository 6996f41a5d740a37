"""Operation history (issue 13): failures stand until the game's next success, bounded."""

from __future__ import annotations

import io

from lanpeer_cli import render
from lanpeer_proto import control as c
from rich.console import Console

from lanpeer.control.history import OperationHistory, hint_for


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def _failed(game_id: str, error: str, code: c.ControlErrorCode | None = None) -> c.FinishedEvent:
    return c.FinishedEvent(game_id=game_id, ok=False, error=error, error_code=code)


def test_a_failure_stands_until_that_games_next_success() -> None:
    history = OperationHistory(clock=Clock())
    history.record(_failed("a", "[Errno 30] Read-only file system: '/g/a'"))
    history.record(_failed("b", "disk full", c.ControlErrorCode.FAILED))
    history.record(c.FinishedEvent(game_id="b", ok=True, bytes=10, seconds=1.0))
    (standing,) = history.standing_failures()
    assert standing.event.game_id == "a"
    assert standing.hint is not None
    assert "remount it read-write" in standing.hint
    assert [(e.game_id, e.state) for e in history.entries()] == [
        ("a", "failed"), ("b", "failed"), ("b", "done")
    ]  # fmt: skip
    history.record(c.FinishedEvent(game_id="a", kind="install", ok=True))
    assert history.standing_failures() == []


def test_a_cancel_is_no_failure_and_the_history_is_bounded() -> None:
    history = OperationHistory(limit=3, clock=Clock())
    history.record(_failed("a", "checksum mismatch", c.ControlErrorCode.FAILED))
    history.record(c.FinishedEvent(game_id="x", ok=False, error="cancelled"))
    for n in range(5):
        history.record(c.FinishedEvent(game_id=f"g{n}", ok=True))
    assert len(history.entries()) == 3
    assert [f.event.game_id for f in history.standing_failures()] == ["a"]  # never dropped


def test_hints_name_the_causes_they_know() -> None:
    assert "--party-key" in (hint_for("failed", "refused: wrong party key") or "")
    assert "free space" in (hint_for("disk_full", "not enough space") or "")
    assert hint_for("failed", "something nobody has seen") is None


def test_ops_shows_a_failure_with_its_error_and_hint() -> None:
    out = io.StringIO()
    history = OperationHistory(clock=Clock())
    history.record(_failed("neon-racer", "[Errno 30] Read-only file system"))
    render.ops(Console(file=out, width=80, color_system=None), history.entries())
    text = out.getvalue()
    assert "neon-racer: [Errno 30] Read-only file system" in text
    assert "-> the game root is read-only" in text
