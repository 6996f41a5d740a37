"""`peer-cli watch` lines for keep-list events (issue 16): one readable line per change."""

from __future__ import annotations

from lanpeer_cli import render
from lanpeer_proto import control as c

PEER = "ABCDEFGH" + "x" * 44


def test_each_keep_action_has_its_own_line() -> None:
    lines = [
        render.event_line(event)
        for event in (
            c.KeepEvent(action="pin", game_id="quake", version="1.0"),
            c.KeepEvent(action="unpin", game_id="quake", version="1.0"),
            c.KeepEvent(action="follow", peer_id=PEER, name="box", install=True),
            c.KeepEvent(action="follow", peer_id=PEER, install=False),
            c.KeepEvent(action="unfollow", peer_id=PEER, name="[b]box"),
        )
    ]
    assert lines == [
        "keep       pinned quake at 1.0",
        "keep       unpinned quake (was 1.0)",
        "keep       following box (ABCDEFGH)",
        "keep       following ABCDEFGH, download only",
        "keep       no longer following \\[b]box (ABCDEFGH)",  # rich markup escaped
    ]
