"""More of keeping hosts in step with real daemons on loopback (issue 16): keep-list events
in `peer-cli --json watch`, and `auto-update = "downloaded"` against the default `installed`
for a game that is downloaded but not installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lanpeer.library.samples import generate_game, payload_bytes, write_catalog, write_version_ini
from tests.cli.test_keep_in_step import (
    DEADLINE,
    MIB,
    Watch,
    _download,
    _finished,
    _offered,
    _version,
)
from tests.daemon.harness import Lanpeerd, ask_json, hold_file_open, release_file, wait_until

pytestmark = pytest.mark.process


def test_pin_and_follow_show_as_keep_events_in_watch(tmp_path: Path) -> None:
    seeder = Lanpeerd(tmp_path / "seeder", name="seeder")
    generate_game(seeder.games, "evt", MIB, seed=1, archives=1)
    write_catalog(seeder.games / "catalog.toml", ["evt"])
    seeder.start()
    host = Lanpeerd(tmp_path / "host", name="host", extra=["--peer", f"127.0.0.1:{seeder.port}"])
    watch = None
    try:
        host.start()
        seeder_id = ask_json(seeder, cmd="status")["result"]["peer_id"]
        wait_until("evt offered", lambda: _offered(host, "evt", "1.0"), timeout=DEADLINE)
        watch = Watch(host)  # subscribed before the first command
        for args in (["pin", "evt", "1.0"], ["follow", "seeder", "--no-install"],
                     ["unfollow", "seeder"], ["unpin", "evt"]):  # fmt: skip
            done = host.cli(*args)
            assert done.rc == 0, (args, done.err)
        keep = []
        for action in ("pin", "follow", "unfollow", "unpin"):
            keep.append(
                watch.wait_for(f"keep {action}", lambda e, a=action: e.get("action") == a)  # type: ignore[misc]
            )
        assert [e for e in watch.drain() if e["event"] == "keep"] == keep  # in order, once each
        pin, follow, unfollow, unpin = keep
        assert pin == {"event": "keep", "action": "pin", "game_id": "evt", "version": "1.0",
                       "peer_id": None, "name": "", "install": None}  # fmt: skip
        assert (unpin["game_id"], unpin["version"]) == ("evt", "1.0")
        assert follow["peer_id"] == seeder_id
        assert (follow["name"], follow["install"], follow["game_id"]) == ("seeder", False, None)
        assert (unfollow["peer_id"], unfollow["name"]) == (seeder_id, "seeder")
        # The pinned game was left out of the follow's mirror: nothing was downloaded.
        assert not (host.games / "evt").exists()
    finally:
        if watch is not None:
            watch.close()
        for daemon in (host, seeder):
            daemon.kill()


def test_downloaded_mode_updates_a_downloaded_only_game_and_installed_mode_leaves_it(
    tmp_path: Path,
) -> None:
    """Both hosts downloaded `dl` 1.0 with --no-install; `plain` also installed `inst`. The
    seeder moves `dl` to 1.1 (one archive of three changes), then `inst`: `eager`
    (`--auto-update downloaded`) fetches only the changed archive and installs nothing; `plain`
    (the default, `installed`) updates `inst`, a check that saw `dl` 1.1 offered, and leaves
    `dl` at 1.0."""
    seeder = Lanpeerd(tmp_path / "seeder", name="seeder")
    games = seeder.games
    generate_game(games, "dl", 6 * MIB, seed=1, archives=3)
    generate_game(games, "inst", MIB, seed=2, archives=1)
    write_catalog(games / "catalog.toml", ["dl", "inst"])
    seeder.start()
    peer = ["--peer", f"127.0.0.1:{seeder.port}"]
    eager = Lanpeerd(tmp_path / "eager", name="eager", extra=[*peer, "--auto-update", "downloaded"])
    plain = Lanpeerd(tmp_path / "plain", name="plain", extra=peer)
    watches: list[Watch] = []
    try:
        for host in (eager, plain):
            host.start()
        for host in (eager, plain):
            wait_until("dl offered", lambda h=host: _offered(h, "dl", "1.0"), timeout=DEADLINE)  # type: ignore[misc]
            done = _download(host, "dl", "--no-install", "--wait")
            assert done.rc == 0, done.err
        done = _download(plain, "inst", "--wait")
        assert done.rc == 0, done.err
        eager_watch, plain_watch = Watch(eager), Watch(plain)
        watches += [eager_watch, plain_watch]
        scratch = tmp_path / "scratch"
        generate_game(scratch, "dl", 6 * MIB, seed=1, archives=3, version="1.1")
        shutil.copyfile(scratch / "dl" / "data01.eti", games / "dl" / "data01.eti")
        write_version_ini(games / "dl", "dl", "1.1")
        assert ask_json(seeder, cmd="rescan", game_id="dl")["type"] == "result"

        fetched = eager_watch.wait_for("dl downloaded by eager", _finished("dl", "download"))
        assert fetched["ok"], fetched
        changed = (scratch / "dl" / "data01.eti").stat().st_size
        assert changed <= fetched["bytes_fetched"] <= changed + 64 * 1024, fetched
        assert "version=1.1" in _version(eager.games / "dl")
        assert not (eager.games / "dl" / "local").exists()  # downloaded, still not installed
        game = eager.cli("game", "dl").doc["game"]
        assert (game["version"], game["installed"]) == ("1.1", False)
        assert not game["update_available"]
        kinds = {op["kind"] for op in eager.cli("ops", "--all").doc if op["game_id"] == "dl"}
        assert not kinds & {"install", "update"}, kinds

        wait_until("plain sees dl 1.1", lambda: _offered(plain, "dl", "1.1"), timeout=DEADLINE)
        generate_game(games, "inst", MIB, seed=2, archives=1, version="1.1")
        assert ask_json(seeder, cmd="rescan", game_id="inst")["type"] == "result"
        updated = plain_watch.wait_for("inst updated by plain", _finished("inst", "update"))
        assert updated["ok"], updated
        assert "version=1.0" in _version(plain.games / "dl")
        game = plain.cli("game", "dl").doc["game"]
        assert (game["version"], game["update_available"]) == ("1.0", True)
        assert not [e for e in plain_watch.drain() if e.get("game_id") == "dl"]
    finally:
        for watch in watches:
            watch.close()
        for daemon in (eager, plain, seeder):
            daemon.kill()


def test_a_cancelled_auto_update_is_not_a_failure_and_is_not_retried(tmp_path: Path) -> None:
    """The host (download capped at 1 MB/s) auto-updates `slow` to a 6 MiB 1.1; the user
    cancels it mid-download: cancelled in the history, no failure in ops or doctor, and a later
    check (the one that updates `other`) does not start it again."""
    seeder = Lanpeerd(tmp_path / "seeder", name="seeder")
    games = seeder.games
    generate_game(games, "slow", MIB // 4, seed=1, archives=1)
    generate_game(games, "other", MIB // 4, seed=2, archives=1)
    write_catalog(games / "catalog.toml", ["slow", "other"])
    seeder.start()
    host = Lanpeerd(tmp_path / "host", name="host", extra=[
        "--peer", f"127.0.0.1:{seeder.port}", "--max-download", "1MB/s",
    ])  # fmt: skip
    watch = None
    try:
        host.start()
        for game in ("slow", "other"):
            wait_until(f"{game} offered", lambda g=game: _offered(host, g, "1.0"), timeout=DEADLINE)  # type: ignore[misc]
            done = _download(host, game, "--wait")
            assert done.rc == 0, done.err
        watch = Watch(host)
        generate_game(games, "slow", 6 * MIB, seed=3, archives=1, version="1.1")
        assert ask_json(seeder, cmd="rescan", game_id="slow")["type"] == "result"
        watch.wait_for(
            "slow downloading",
            lambda e: (e["event"], e.get("game_id"), e.get("kind")) == ("progress", "slow",
                                                                        "download"),
        )  # fmt: skip
        cancelled = host.cli("cancel", "slow")
        assert cancelled.rc == 0, cancelled.err
        finished = watch.wait_for("slow download ended", _finished("slow", "download"))
        assert not finished["ok"]

        def recorded() -> Any:
            """The updater's verdict: a cancel (doctor) or a failure (a retry row in ops)."""
            retry = [op for op in host.cli("ops").doc if op["game_id"] == "slow"]
            check = {c["name"]: c for c in host.cli("doctor").doc}["auto-update"]
            return retry or (check if "cancelled, not retried" in check["summary"] else None)

        check = wait_until("the updater to record the cancel", recorded, timeout=DEADLINE)
        assert isinstance(check, dict), check  # (a list: ops shows a failure to retry)
        assert "slow 1.1" in check["summary"]
        assert check["status"] == "ok", check  # not a failure
        history = [op for op in host.cli("ops", "--all").doc if op["game_id"] == "slow"]
        assert history[-1]["kind"] == "download"
        assert history[-1]["state"] == "cancelled", history

        generate_game(games, "other", MIB // 4, seed=2, archives=1, version="1.1")
        assert ask_json(seeder, cmd="rescan", game_id="other")["type"] == "result"
        updated = watch.wait_for("other updated", _finished("other", "update"))
        assert updated["ok"], updated
        after = [
            e for e in watch.seen[watch.seen.index(finished) + 1 :] if e.get("game_id") == "slow"
        ]
        assert [(e["event"], e["state"]) for e in after] == [("progress", "cancelled")], after
        assert [op for op in host.cli("ops").doc if op["game_id"] == "slow"] == []
        assert "version=1.0" in _version(host.games / "slow")
    finally:
        if watch is not None:
            watch.close()
        for daemon in (host, seeder):
            daemon.kill()


def test_cancelling_an_update_that_waits_for_a_running_game_drops_it(tmp_path: Path) -> None:
    """`held` 1.1 is downloaded and its update waits (a process holds a file of its local/
    open); `peer-cli cancel held` cancels that wait, although no operation runs: when the
    process exits, local/ stays at 1.0."""
    seeder = Lanpeerd(tmp_path / "seeder", name="seeder")
    games = seeder.games
    generate_game(games, "held", MIB // 4, seed=1, archives=1)
    generate_game(games, "other", MIB // 4, seed=2, archives=1)
    write_catalog(games / "catalog.toml", ["held", "other"])
    seeder.start()
    host = Lanpeerd(tmp_path / "host", name="host", extra=["--peer", f"127.0.0.1:{seeder.port}"])
    watch = None
    holder: subprocess.Popen[str] | None = None
    try:
        host.start()
        for game in ("held", "other"):
            wait_until(f"{game} offered", lambda g=game: _offered(host, g, "1.0"), timeout=DEADLINE)  # type: ignore[misc]
            done = _download(host, game, "--wait")
            assert done.rc == 0, done.err
        local_file = host.games / "held" / "local" / "held" / "data00.bin"
        holder = hold_file_open(local_file)
        watch = Watch(host)
        generate_game(games, "held", MIB // 4, seed=3, archives=1, version="1.1")
        assert ask_json(seeder, cmd="rescan", game_id="held")["type"] == "result"
        waiting = watch.wait_for(
            "held waiting: in use",
            lambda e: e.get("game_id") == "held" and e.get("state") == "waiting: in use",
        )
        cancelled = host.cli("cancel", "held")
        assert cancelled.rc == 0, cancelled.err
        assert "cancelled the auto-update of held" in cancelled.doc["message"]
        assert [op for op in host.cli("ops").doc if op["game_id"] == "held"] == []
        check = {c["name"]: c for c in host.cli("doctor").doc}["auto-update"]
        assert check["status"] == "ok", check
        assert "waiting" not in check["summary"]
        assert holder.stdin is not None
        holder.stdin.close()  # the "game" exits
        holder.wait(10)
        generate_game(games, "other", MIB // 4, seed=2, archives=1, version="1.1")
        assert ask_json(seeder, cmd="rescan", game_id="other")["type"] == "result"
        updated = watch.wait_for("other updated", _finished("other", "update"))
        assert updated["ok"], updated
        after = [
            e for e in watch.seen[watch.seen.index(waiting) + 1 :] if e.get("game_id") == "held"
        ]
        assert [(e["event"], e["kind"], e["state"]) for e in after] == [
            ("progress", "update", "cancelled")  # the wait ended; nothing after
        ], after
        assert local_file.read_bytes() == payload_bytes("1:held:1.0:0", local_file.stat().st_size)
        game = host.cli("game", "held").doc["game"]
        assert (game["version"], game["installed_version"]) == ("1.1", "1.0")
    finally:
        release_file(holder)
        if watch is not None:
            watch.close()
        for daemon in (host, seeder):
            daemon.kill()
