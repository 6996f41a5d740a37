"""Pins and follows persist in the state dir (``keep.json``): a unit test of the file and a
real daemon that keeps a pin across a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lanpeer.control.events import EventHub
from lanpeer.control.keepstep import KeepInStep
from lanpeer.net.peers import PeerEvent, PeerEventKind
from lanpeer.pins import KEEP_FILE, KeepList
from tests.daemon.harness import Lanpeerd


def test_pins_and_follows_round_trip_and_a_bad_file_is_set_aside(tmp_path: Path) -> None:
    keep = KeepList.load(tmp_path)
    keep.pin("neon", "1.0")
    keep.follow("PEERID", install=False)
    again = KeepList.load(tmp_path)
    assert (again.pins, again.follows) == ({"neon": "1.0"}, {"PEERID": False})
    assert again.unpin("neon") == "1.0"
    assert again.unpin("neon") is None
    assert KeepList.load(tmp_path).pins == {}
    (tmp_path / KEEP_FILE).write_text("{not json")
    assert KeepList.load(tmp_path).pins == {}
    assert (tmp_path / "keep.json.bad").read_text() == "{not json"  # kept for the person


@pytest.mark.process
def test_a_pin_survives_a_daemon_restart(tmp_path: Path, daemons: list[Lanpeerd]) -> None:
    daemon = Lanpeerd(tmp_path / "alpha")
    daemons.append(daemon.start())
    pinned = daemon.cli("pin", "neon", "1.0")
    assert pinned.rc == 0, pinned.err
    assert "pinned at 1.0" in pinned.doc["message"]
    unknown = daemon.cli("pin", "ghost")  # no version and not here: nothing to pin at
    assert unknown.rc == 4
    assert "name the version" in unknown.err
    assert daemon.stop() == 0
    assert json.loads((daemon.state / KEEP_FILE).read_text())["pins"] == {"neon": "1.0"}
    daemon.start()
    doctor = {c["name"]: c for c in daemon.cli("doctor").doc}
    assert "neon at 1.0" in doctor["auto-update"]["summary"]
    unpinned = daemon.cli("unpin", "neon")
    assert unpinned.rc == 0, unpinned.err
    assert "was 1.0" in unpinned.doc["message"]
    assert daemon.cli("unpin", "neon").rc == 4


@pytest.mark.parametrize(
    ("kind", "pokes"),
    [("up", True), ("library", True), ("down", False), ("removed", False)],
)
def test_a_peer_connecting_or_its_library_changing_triggers_a_check(
    tmp_path: Path, kind: str, pokes: bool
) -> None:
    keep = KeepList.load(tmp_path)
    keep.follow("FOLLOWED", install=True)
    step = KeepInStep(None, None, None, EventHub(), keep, "installed", lambda game_id: None)
    step.on_peer_event(PeerEvent(PeerEventKind(kind), "FOLLOWED"))
    step.on_peer_event(PeerEvent(PeerEventKind(kind), "OTHER"))
    assert step.updater._wake.is_set() is pokes
    assert step._follow_due == ({"FOLLOWED"} if pokes else set())
