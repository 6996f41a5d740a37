"""Issue 13 through two real daemons and peer-cli: what the CLI says is what happened.

One module-scoped pair (a seeder with three games, a capped leecher that found it by
add-peer); each test leaves the pair as it found it where it can.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Party, SampleGame
from tests.daemon.harness import PEER_CLI, Lanpeerd, ask_json, json_watch, wait_until
from tests.daemon.readonly import ReadOnlyRootLanpeerd, needs_mount

pytestmark = pytest.mark.process

MIB = 1 << 20


def game_doc(daemon: Lanpeerd, game_id: str) -> Any:
    return next(
        (g for g in ask_json(daemon, cmd="games")["result"]["games"] if g["id"] == game_id), None
    )


def ready(daemon: Lanpeerd, game_id: str, version: str | None = None) -> Any:
    """Until a peer offers ``game_id`` (at ``version``), hashed."""

    def offered() -> Any:
        game = game_doc(daemon, game_id)
        if game and game["ready_peers"] and version in (None, game["newest_version"]):
            return game
        return None

    return wait_until(f"{game_id} offered", offered)


@pytest.fixture(scope="module")
def party_games() -> list[SampleGame]:
    # The leecher's 4 MiB/s cap keeps slow-game (48 MiB) downloading for ~12 s: time to
    # interrupt and cancel it.
    return [
        SampleGame("slow-game", 48 * MIB, seed=2, archives=1),
        SampleGame("tiny-tanks", MIB, seed=3, archives=2),
        SampleGame("neon-racer", 2 * MIB, seed=5, archives=2),
    ]


@pytest.fixture(scope="module")
def pair(party: Party) -> tuple[Lanpeerd, Lanpeerd]:
    return party.seeder, party.leecher


def test_ctrl_c_on_download_wait_says_the_download_goes_on(pair: tuple[Lanpeerd, Lanpeerd]) -> None:
    _, leecher = pair
    argv = [PEER_CLI, "--socket", str(leecher.socket), "--json", "download", "slow-game", "--wait"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # blocks until the first progress line
        assert first["event"] == "progress"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 130
        assert "goes on in lanpeerd" in err  # once: silence, and people thought it cancelled
        assert "peer-cli cancel slow-game" in err
        (op,) = ask_json(leecher, cmd="ops")["result"]["ops"]
        assert op["game_id"] == "slow-game"
    finally:
        proc.kill()
        proc.communicate(timeout=5)
        leecher.cli("cancel", "slow-game")
        wait_until("ops empty", lambda: ask_json(leecher, cmd="ops")["result"]["ops"] == [])


def test_add_peer_to_a_dead_address_fails_with_a_reason(pair: tuple[Lanpeerd, Lanpeerd]) -> None:
    _, leecher = pair
    dead = leecher.cli("add-peer", "127.0.0.1:9", timeout=60)  # once: "dialling", exit 0
    assert dead.rc == 1, dead.out + dead.err
    assert "no lanpeerd answered at 127.0.0.1:9: no answer" in dead.doc["message"]
    doctor = {check["name"]: check for check in leecher.cli("doctor").doc}
    assert "127.0.0.1:9 (no answer" in doctor["peers"]["summary"]
    removed = leecher.cli("remove-peer", "127.0.0.1:9")
    assert removed.rc == 0, removed.err
    doctor = {check["name"]: check for check in leecher.cli("doctor").doc}
    assert "127.0.0.1:9" not in doctor["peers"]["summary"]
    assert leecher.cli("remove-peer", "127.0.0.1:9").rc == 4  # no longer a static peer
    assert "Future exception was never retrieved" not in leecher.log_text()


def test_add_peer_to_an_unresolvable_name_is_refused(pair: tuple[Lanpeerd, Lanpeerd]) -> None:
    _, leecher = pair
    result = leecher.cli("add-peer", "no-such-host.invalid:47600")
    assert result.rc == 4, result.out + result.err
    assert "cannot resolve 'no-such-host.invalid'" in result.doc["message"]
    doctor = {check["name"]: check for check in leecher.cli("doctor").doc}
    assert "no-such-host" not in doctor["peers"]["summary"]  # not kept, not redialled


def test_the_log_carries_no_library_noise(pair: tuple[Lanpeerd, Lanpeerd]) -> None:
    for daemon in pair:
        text = daemon.log_text()
        assert "peer " in text  # the log is there, with the connection in it
        assert "Negotiated protocol version" not in text  # once: half the lines
        assert "RecoveryResult(" not in text  # once: a Python repr per game at every start
        assert "doesn't support modifying entry digests" not in text


def _new_version(
    seeder: Lanpeerd, leecher: Lanpeerd, game_id: str, version: str, seed: int
) -> None:
    from lanpeer.library.samples import generate_game

    generate_game(seeder.games, game_id, MIB, seed=seed, archives=2, version=version)
    assert ask_json(seeder, cmd="rescan", game_id=game_id)["type"] == "result"
    ready(leecher, game_id, version)


def _local_digest(game_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(game_dir)): p.read_bytes() for p in game_dir.rglob("*") if p.is_file()
    }


def test_update_fetches_the_newer_version_and_installs_it(
    pair: tuple[Lanpeerd, Lanpeerd], tmp_path: Path
) -> None:
    """Once: `update` with 1.1 offered re-extracted 1.0, said done, and games kept (update)."""
    seeder, leecher = pair
    first = leecher.cli("download", "tiny-tanks", "--wait")
    assert first.rc == 0, first.err
    _new_version(seeder, leecher, "tiny-tanks", "1.1", seed=4)
    # what 1.1 unpacks to, extracted here from the seeder's own archives
    from lanpeer.install import install_game

    reference = tmp_path / "tiny-tanks"
    reference.mkdir()
    for archive in sorted((seeder.games / "tiny-tanks").iterdir()):
        if archive.is_file():
            (reference / archive.name).write_bytes(archive.read_bytes())
    install_game(reference)
    game_dir = leecher.games / "tiny-tanks"
    assert _local_digest(game_dir / "local") != _local_digest(reference / "local")

    updated = leecher.cli("update", "tiny-tanks")
    assert updated.rc == 0, updated.out + updated.err
    assert updated.lines[-1]["event"] == "finished"
    assert updated.lines[-1]["ok"] is True
    assert "version=1.1" in (game_dir / "version.ini").read_text()
    assert _local_digest(game_dir / "local") == _local_digest(reference / "local")
    game = game_doc(leecher, "tiny-tanks")
    assert (game["version"], game["installed_version"]) == ("1.1", "1.1")
    assert game["update_available"] is False

    again = leecher.cli("update", "tiny-tanks")  # nothing newer: say so, exit 0, queue nothing
    assert again.rc == 0, again.err
    assert "up to date (1.1)" in again.doc["message"]
    assert ask_json(leecher, cmd="ops")["result"]["ops"] == []


def test_installed_and_downloaded_versions_are_told_apart(pair: tuple[Lanpeerd, Lanpeerd]) -> None:
    """Once: a --no-install download of another version made `games` call it installed."""
    seeder, leecher = pair
    assert leecher.cli("download", "neon-racer", "--wait").rc == 0
    _new_version(seeder, leecher, "neon-racer", "1.1", seed=6)
    fetched = leecher.cli("download", "neon-racer", "--no-install", "--wait")
    assert fetched.rc == 0, fetched.err
    game = game_doc(leecher, "neon-racer")
    assert (game["version"], game["installed_version"]) == ("1.1", "1.0")
    assert game["update_available"] is True  # downloaded, not yet installed
    human = leecher.cli("games", json_output=False).out
    row = next(line for line in human.splitlines() if "neon-racer" in line)
    assert row.split()[1:3] == ["1.0", "1.1"]  # installed, downloaded
    updated = leecher.cli("update", "neon-racer")  # installs the downloaded 1.1
    assert updated.rc == 0, updated.err
    game = game_doc(leecher, "neon-racer")
    assert (game["version"], game["installed_version"]) == ("1.1", "1.1")
    assert game["update_available"] is False


@needs_mount
def test_a_failed_download_without_wait_stays_visible_with_a_hint(
    pair: tuple[Lanpeerd, Lanpeerd], tmp_path: Path
) -> None:
    """Once: ops empty, games unchanged, doctor "no download finished yet"; only a traceback."""
    seeder, _ = pair
    leecher = ReadOnlyRootLanpeerd(tmp_path / "ro", name="ro-leecher").start()
    try:
        assert leecher.cli("add-peer", f"127.0.0.1:{seeder.port}").rc == 0
        ready(leecher, "tiny-tanks")
        queued = leecher.cli("download", "tiny-tanks")
        assert queued.rc == 0, queued.err

        def failed() -> Any:
            ops = leecher.cli("ops").doc
            return ops if ops and ops[0]["state"] == "failed" else None

        (op,) = wait_until("the download to fail", failed)
        assert (op["game_id"], op["kind"], op["ok"]) == ("tiny-tanks", "download", False)
        assert "read-only" in op["error"].lower()
        assert "remount it read-write" in op["hint"]
        assert op["finished_at"] > 0
        assert [o["game_id"] for o in leecher.cli("ops", "--all").doc] == ["tiny-tanks"]
        doctor = {c["name"]: c for c in leecher.cli("doctor").doc}
        assert "remount it read-write" in doctor["failed: tiny-tanks"]["hint"]
        assert "download of tiny-tanks failed: [Errno 30] Read-only" in leecher.log_text()
        assert "Traceback" not in leecher.log_text()  # an expected error is one line
    finally:
        leecher.kill()


def _next_upload_event(watch: subprocess.Popen[str]) -> Any:
    """The next upload line of a `watch --json` (peer and library lines pass through too)."""
    assert watch.stdout is not None
    while line := watch.stdout.readline():  # bounded by the test timeout and watch's end
        event = json.loads(line)
        if event["event"] == "upload":
            return event
    raise AssertionError("watch ended before an upload event")


def test_the_seeder_sees_who_downloads_what(pair: tuple[Lanpeerd, Lanpeerd]) -> None:
    """Once: the seeder's ops, status, watch and peers said nothing; its log nothing either."""
    seeder, leecher = pair
    leecher_id = ask_json(leecher, cmd="status")["result"]["peer_id"]
    watch = json_watch(seeder, "--game", "slow-game")
    try:
        assert leecher.cli("download", "slow-game", "--no-install").rc == 0
        assert watch.stdout is not None
        started = _next_upload_event(watch)
        assert (started["state"], started["peer_id"], started["name"], started["game_id"]) == (
            "started", leecher_id, "leecher", "slow-game"
        )  # fmt: skip

        def pulling() -> Any:
            uploads = seeder.cli("uploads").doc
            return uploads if uploads and uploads[0]["rate"] > 0 else None

        (upload,) = wait_until("an upload with a rate", pulling)
        assert (upload["peer_id"], upload["name"], upload["game_id"]) == (
            leecher_id, "leecher", "slow-game"
        )  # fmt: skip
        assert upload["bytes"] > 0
        assert upload["since"] > 0
        peer = next(p for p in seeder.cli("peers").doc if p["peer_id"] == leecher_id)
        assert peer["rate_up"] > 0
        status = seeder.cli("status").doc
        assert status["uploads"] == 1
        assert status["upload_rate"] > 0
        assert "uploading: 1 session(s)" in seeder.cli("status", json_output=False).out
        assert peer["rate_down"] == 0
        (seen_from_leecher,) = leecher.cli("peers").doc
        assert wait_until("a download rate", lambda: leecher.cli("peers").doc[0]["rate_down"] > 0)
        assert seen_from_leecher["rate_up"] == 0
        assert "slow-game" in seeder.cli("uploads", json_output=False).out
        assert leecher.cli("cancel", "slow-game").rc == 0
        finished = _next_upload_event(watch)  # after ~10 s without a request
        assert (finished["event"], finished["state"]) == ("upload", "finished")
        assert finished["bytes"] >= upload["bytes"]
        assert "upload of slow-game to leecher" in seeder.log_text()
        assert seeder.cli("uploads").doc == []
    finally:
        watch.kill()
        watch.communicate(timeout=5)
        leecher.cli("cancel", "slow-game")
        wait_until("ops empty", lambda: ask_json(leecher, cmd="ops")["result"]["ops"] == [])


def test_games_filters_and_totals(pair: tuple[Lanpeerd, Lanpeerd]) -> None:
    _, leecher = pair
    assert leecher.cli("download", "tiny-tanks", "--wait").rc == 0  # installed either way
    ids = {name: [g["id"] for g in leecher.cli("games", *flags).doc]
           for name, flags in {"installed": ["--installed"], "remote": ["--remote"],
                               "match": ["--match", "NEON"], "all": []}.items()}  # fmt: skip
    assert "tiny-tanks" in ids["installed"]
    assert "slow-game" not in ids["installed"]
    assert "slow-game" in ids["remote"]
    assert "tiny-tanks" not in ids["remote"]
    assert ids["match"] == ["neon-racer"]  # case-insensitive, by id or name
    assert set(ids["all"]) == {"slow-game", "tiny-tanks", "neon-racer"}
    updates = leecher.cli("games", "--updates").doc
    assert all(g["update_available"] for g in updates)
    human = leecher.cli("games", json_output=False).out
    every = leecher.cli("games").doc
    here = sum(1 for g in every if g["version"] is not None or g["installed"])
    assert here >= 1
    on_disk = sum(g["size"] for g in every if g["version"] is not None or g["installed"])
    totals = f"3 games ({here} here, {len(ids['installed'])} installed): {on_disk / 1e6:.1f} MB"
    assert totals in " ".join(human.split())
    assert "offered by peers" in human


def test_game_shows_one_game_in_full(pair: tuple[Lanpeerd, Lanpeerd]) -> None:
    seeder, leecher = pair
    seeder_id = ask_json(seeder, cmd="status")["result"]["peer_id"]
    assert leecher.cli("download", "tiny-tanks", "--wait").rc == 0
    doc = leecher.cli("game", "tiny-tanks").doc
    game = doc["game"]
    assert game["id"] == "tiny-tanks"
    assert game["installed"] is True
    assert game["installed_version"] == game["version"]
    (source,) = [s for s in game["sources"] if s["peer_id"] == seeder_id]
    assert source["version"] == game["newest_version"]
    assert len(source["manifest_hash"]) == 64
    assert source["partial"] is False
    assert doc["path"] == str(leecher.games / "tiny-tanks")
    assert doc["operation"] is None
    assert doc["pin"] is None
    assert any(h["kind"] == "download" and h["ok"] for h in doc["history"])
    human = leecher.cli("game", "tiny-tanks", json_output=False).out
    assert "history:" in human
    assert seeder_id[:8] in human
    remote = leecher.cli("game", "slow-game").doc["game"]  # offered, not here
    assert (remote["version"], remote["installed"]) == (None, False)
    assert leecher.cli("game", "no-such-game").rc == 4


def test_remove_of_the_last_copy_on_the_lan_asks_first(daemon: Lanpeerd) -> None:
    """Once: `remove` deleted the only copy anyone had without a word."""
    from lanpeer.library.samples import generate_game, write_catalog

    generate_game(daemon.games, "only-copy", MIB, seed=9, archives=1)
    write_catalog(daemon.games / "catalog.toml", ["only-copy"])
    assert daemon.cli("rescan").rc == 0
    refused = daemon.cli("remove", "only-copy")
    assert refused.rc == 5, refused.out + refused.err
    assert "last copy on the LAN" in refused.doc["message"]
    assert (daemon.games / "only-copy" / "version.ini").is_file()
    removed = daemon.cli("remove", "only-copy", "--yes")
    assert removed.rc == 0, removed.err
    assert not (daemon.games / "only-copy").exists()


def test_download_of_what_is_here_and_install_during_a_download_say_so(
    pair: tuple[Lanpeerd, Lanpeerd],
) -> None:
    """Once: `download` of a game already here said "queued" and did nothing; `install`
    during its download said "not downloaded"."""
    _, leecher = pair
    assert leecher.cli("download", "tiny-tanks", "--wait").rc == 0
    again = leecher.cli("download", "tiny-tanks", "--wait")
    assert again.rc == 0, again.err
    assert "already downloaded and installed: nothing to do" in again.doc["message"]
    assert ask_json(leecher, cmd="ops")["result"]["ops"] == []
    assert leecher.cli("download", "slow-game", "--no-install").rc == 0
    try:
        during = leecher.cli("install", "slow-game")
        assert during.rc == 5, during.out + during.err
        assert "has a download running" in during.doc["message"]
    finally:
        leecher.cli("cancel", "slow-game")
        wait_until("ops empty", lambda: ask_json(leecher, cmd="ops")["result"]["ops"] == [])
