"""Two real daemons on loopback driven through peer-cli: discovery by add-peer, watch, the
merged library, download --wait with progress lines, the install transactions, conflicts,
cancel."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.cli.conftest import Party, SampleGame
from tests.daemon.harness import Lanpeerd, ask_json, json_watch, wait_until

MIB = 1 << 20

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def party_games() -> list[SampleGame]:
    # The leecher's 4 MiB/s cap keeps slow-game (64 MiB) downloading for ~16 s: time to
    # collide with and cancel it.
    return [
        SampleGame("space-race", 6 * MIB, seed=1),
        SampleGame("slow-game", 64 * MIB, seed=2, archives=1),
        SampleGame("tiny-tanks", MIB, seed=3, archives=2),
    ]


@pytest.fixture(scope="module")
def pair(party: Party) -> dict[str, Any]:
    """The party as these tests read it; ``first_event`` is the seeder's ``peer_up``."""
    return {"seeder": party.seeder, "leecher": party.leecher, "seeder_id": party.seeder_id,
            "first_event": party.first_event}  # fmt: skip


def _download(daemon: Lanpeerd, *args: str) -> Any:
    """`download` retried while the seeder is still hashing (bounded)."""

    def attempt() -> Any:
        result = daemon.cli("download", *args, timeout=60)
        return None if result.rc == 1 and "hashing" in result.err else result

    return wait_until("the seeder to finish hashing", attempt)


def test_watch_reports_the_peer_found_by_add_peer(pair: dict[str, Any]) -> None:
    event = pair["first_event"]
    assert event["event"] == "peer_up"
    assert event["peer_id"] == pair["seeder_id"]
    assert event["name"] == "seeder"
    assert event["address"] == f"127.0.0.1:{pair['seeder'].port}"


def test_peers_and_games_documents(pair: dict[str, Any]) -> None:
    leecher: Lanpeerd = pair["leecher"]
    peers = leecher.cli("peers")
    assert peers.rc == 0
    (peer,) = peers.doc
    assert {"peer_id", "name", "address", "proto_ver", "library_rev", "last_seen", "games"} <= set(
        peer
    )
    assert peer["peer_id"] == pair["seeder_id"]
    assert peer["games"] == 3
    assert 0 < peer["rtt_ms"] < 1000  # the live QUIC session's smoothed RTT, on loopback
    games = {g["id"]: g for g in leecher.cli("games").doc}
    race = games["space-race"]
    assert race["version"] is None
    assert race["downloaded"] is False
    assert race["installed"] is False
    assert race["state"] == "remote"
    assert race["peers"] == [pair["seeder_id"]]
    assert race["newest_version"] == "1.0"
    assert race["update_available"] is False
    assert race["name"] == "Space Race"


def test_download_wait_streams_progress_then_finished_and_installs(pair: dict[str, Any]) -> None:
    leecher: Lanpeerd = pair["leecher"]
    result = _download(leecher, "space-race", "--wait")
    assert result.rc == 0, result.err
    lines = result.lines
    assert all(line["game_id"] == "space-race" for line in lines)
    last = lines[-1]
    assert last["event"] == "finished"
    assert last["ok"] is True
    assert last["error"] is None
    assert last["bytes"] > 6 * MIB
    assert last["seconds"] > 0
    assert last["peers_used"] == [pair["seeder_id"]]
    game = next(g for g in leecher.cli("games").doc if g["id"] == "space-race")
    assert (game["version"], game["downloaded"], game["installed"]) == ("1.0", True, True)
    assert (leecher.games / "space-race" / "local").is_dir()


def test_transactions_and_their_exit_codes(pair: dict[str, Any]) -> None:
    leecher: Lanpeerd = pair["leecher"]
    wait_until("space-race installed", lambda: (leecher.games / "space-race" / "local").is_dir())
    assert leecher.cli("install", "space-race").rc == 5  # already installed
    assert ask_json(leecher, cmd="remove", game_id="space-race")["code"] == "conflict"
    uninstall = leecher.cli("uninstall", "space-race")
    assert uninstall.rc == 0, uninstall.err
    assert [line["event"] for line in uninstall.lines][-1] == "finished"
    assert uninstall.lines[-1]["ok"] is True
    assert not (leecher.games / "space-race" / "local").exists()
    assert ask_json(leecher, cmd="uninstall", game_id="space-race")["code"] == "conflict"
    removed = leecher.cli("remove", "space-race")
    assert removed.rc == 0, removed.err
    assert not (leecher.games / "space-race" / "version.ini").exists()
    assert leecher.cli("install", "space-race").rc == 4  # no longer on this host
    assert ask_json(leecher, cmd="rescan", game_id="space-race")["code"] == "unknown_game"
    assert ask_json(leecher, cmd="rescan")["type"] == "result"
    assert ask_json(leecher, cmd="download", game_id="no-such-game")["code"] == "unknown_game"


def test_queue_conflict_and_cancel(pair: dict[str, Any]) -> None:
    leecher: Lanpeerd = pair["leecher"]
    queued = _download(leecher, "slow-game", "--no-install")
    assert queued.rc == 0, queued.err
    assert queued.doc["ok"] is True
    again = leecher.cli("download", "slow-game")  # the same download asked again: follow it
    assert again.rc == 0, again.err
    assert "already" in again.doc["message"]
    other = leecher.cli("download", "slow-game", "--version", "9.9")  # a different one
    assert other.rc == 5
    assert other.doc["error"] == "conflict"
    (op,) = ask_json(leecher, cmd="ops")["result"]["ops"]
    assert (op["game_id"], op["kind"], op["lane"]) == ("slow-game", "download", "download")
    cancelled = leecher.cli("cancel", "slow-game")
    assert cancelled.rc == 0, cancelled.err
    wait_until("ops empty", lambda: ask_json(leecher, cmd="ops")["result"]["ops"] == [])
    assert not (leecher.games / "slow-game" / ".lanpeer.part").exists()
    assert ask_json(leecher, cmd="cancel", game_id="slow-game")["code"] == "unknown_game"


def test_newer_version_on_a_peer_is_an_update(pair: dict[str, Any]) -> None:
    from lanpeer.library.samples import generate_game

    seeder, leecher = pair["seeder"], pair["leecher"]
    first = _download(leecher, "tiny-tanks", "--wait")
    assert first.rc == 0, first.err
    generate_game(seeder.games, "tiny-tanks", MIB, seed=4, archives=2, version="1.1")
    assert ask_json(seeder, cmd="rescan", game_id="tiny-tanks")["type"] == "result"

    def update_offered() -> Any:
        games = ask_json(leecher, cmd="games")["result"]["games"]
        game = next(g for g in games if g["id"] == "tiny-tanks")
        return game if game["update_available"] and game["ready_peers"] else None

    game = wait_until("the update to be offered", update_offered)
    assert (game["version"], game["newest_version"]) == ("1.0", "1.1")
    second = _download(leecher, "tiny-tanks", "--no-install", "--wait")
    assert second.rc == 0, second.err
    assert "version=1.1" in (leecher.games / "tiny-tanks" / "version.ini").read_text()
    updated = leecher.cli("update", "tiny-tanks")
    assert updated.rc == 0, updated.err
    assert updated.lines[-1]["kind"] == "update"
    game = next(g for g in leecher.cli("games").doc if g["id"] == "tiny-tanks")
    assert (game["version"], game["installed"], game["update_available"]) == ("1.1", True, False)


def test_sigterm_says_goodbye_and_a_restart_keeps_identity_and_library(
    pair: dict[str, Any],
) -> None:
    """Last in this module: it stops the seeder. Goodbye makes the leecher see peer_down at once
    (the stale timeout is 45 s); the restarted seeder has the same peer id and library rev."""
    seeder, leecher = pair["seeder"], pair["leecher"]
    rev_before = ask_json(seeder, cmd="status")["result"]["library_rev"]
    watch = json_watch(leecher)
    try:
        started = time.monotonic()
        assert seeder.stop() == 0
        assert watch.stdout is not None
        event = json.loads(watch.stdout.readline())
        assert event == {"event": "peer_down", "peer_id": pair["seeder_id"]}
        assert time.monotonic() - started < 15
    finally:
        watch.kill()
        watch.communicate(timeout=5)
    assert not seeder.socket.exists()
    again = Lanpeerd(seeder.home, name="seeder", port=seeder.port).start()
    try:
        status = ask_json(again, cmd="status")["result"]
        assert status["peer_id"] == pair["seeder_id"]
        assert status["library_rev"] >= rev_before
    finally:
        again.kill()
