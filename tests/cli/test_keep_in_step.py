"""Keeping hosts in step, with real daemons on loopback driven through peer-cli (issue 16):
auto-update of a changed game (only its changed chunks cross the wire), a pinned game that
stays, a game in use that waits for its process, `download --all` stopping at a small tmpfs's
limit, `follow`, and two variants of one version string."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libarchive
import pytest

from lanpeer.library.samples import generate_game, payload_bytes, write_catalog, write_version_ini
from tests.daemon.harness import (
    Lanpeerd,
    ask_json,
    hold_file_open,
    json_watch,
    release_file,
    wait_until,
)

pytestmark = pytest.mark.process

MIB = 1 << 20
DEADLINE = 60.0  # a loaded 2-core box: a download + update of a few MiB takes seconds


class Watch:
    """`peer-cli --json watch` of one daemon; one reader thread into a bounded queue."""

    def __init__(self, daemon: Lanpeerd) -> None:
        self.proc = json_watch(daemon, timeout=DEADLINE)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=100_000)
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def wait_for(self, what: str, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        for event in self.seen:
            if match(event):
                return event
        deadline = time.monotonic() + DEADLINE
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(event)
            if match(event):
                return event
        raise AssertionError(f"no {what} event; saw {self.seen[-20:]}")

    def drain(self) -> list[dict[str, Any]]:
        """Every event received so far."""
        while True:
            try:
                self.seen.append(self.events.get_nowait())
            except queue.Empty:
                return self.seen

    def close(self) -> None:
        self.proc.kill()
        self.proc.communicate(timeout=5)


def _finished(game_id: str, kind: str) -> Callable[[dict[str, Any]], bool]:
    def match(event: dict[str, Any]) -> bool:
        return (
            event["event"] == "finished"
            and event.get("game_id") == game_id
            and (event.get("kind") == kind)
        )

    return match


def _download(daemon: Lanpeerd, *args: str) -> Any:
    """`download` retried while the seeder is still hashing (bounded)."""

    def attempt() -> Any:
        result = daemon.cli("download", *args, timeout=60)
        return None if result.rc == 1 and "hashing" in result.err else result

    return wait_until("the seeder to finish hashing", attempt, timeout=DEADLINE)


def _offered(daemon: Lanpeerd, game_id: str, version: str, peers: int = 1) -> bool:
    games = ask_json(daemon, cmd="games")["result"]["games"]
    return any(
        g["id"] == game_id and g["newest_version"] == version and len(g["ready_peers"]) >= peers
        for g in games
    )


def _entry_bytes(archive: Path, member: str) -> bytes:
    with libarchive.file_reader(str(archive)) as entries:
        for entry in entries:
            if entry.pathname == member:
                return b"".join(entry.get_blocks())
    raise AssertionError(f"{member} not in {archive}")


def _version(game_dir: Path) -> str:
    return (game_dir / "version.ini").read_text()


# ---------------------------------------------------------------- auto-update, pin, in use


@pytest.fixture(scope="module")
def party(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A seeder with three games at 1.0; a host (auto-update = installed, the default) that
    installed all three, pinned one, and runs a process holding a file open in another."""
    home = tmp_path_factory.mktemp("party")
    games = home / "seeder" / "games"
    games.mkdir(parents=True)
    generate_game(games, "neon", 12 * MIB, seed=1, archives=3)
    generate_game(games, "pinned", MIB, seed=2, archives=1)
    generate_game(games, "busy", MIB, seed=3, archives=1)
    generate_game(games, "broken", MIB, seed=4, archives=2)
    write_catalog(games / "catalog.toml", ["neon", "pinned", "busy", "broken"])
    seeder = Lanpeerd(home / "seeder", name="seeder").start()
    host = Lanpeerd(home / "host", name="host", extra=["--peer", f"127.0.0.1:{seeder.port}"])
    host.start()
    holder: subprocess.Popen[str] | None = None
    watch: Watch | None = None
    try:
        for game in ("neon", "pinned", "busy", "broken"):
            wait_until(f"{game} offered", lambda g=game: _offered(host, g, "1.0"), timeout=DEADLINE)  # type: ignore[misc]
            done = _download(host, game, "--wait")
            assert done.rc == 0, done.err
        pinned = host.cli("pin", "pinned")
        assert pinned.rc == 0, pinned.err
        # A "running game": a child process with a file of busy/local/ open (ended by pid).
        held = host.games / "busy" / "local" / "busy" / "data00.bin"
        holder = hold_file_open(held)
        watch = Watch(host)
        # 1.1 of neon changes one archive of three; pinned and busy change completely.
        scratch = home / "scratch"
        generate_game(scratch, "neon", 12 * MIB, seed=1, archives=3, version="1.1")
        shutil.copyfile(scratch / "neon" / "data01.eti", games / "neon" / "data01.eti")
        write_version_ini(games / "neon", "neon", "1.1")
        generate_game(games, "pinned", MIB, seed=2, archives=1, version="1.1")
        generate_game(games, "busy", MIB, seed=3, archives=1, version="1.1")
        # broken 1.1 downloads fine (its bytes are what the seeder serves) but cannot install:
        # its tar's first 4 KiB are zeros.
        generate_game(games, "broken", MIB, seed=4, archives=2, version="1.1")
        with (games / "broken" / "data01.eti").open("r+b") as tar:
            tar.write(bytes(4096))
        for game in ("neon", "pinned", "busy", "broken"):
            assert ask_json(seeder, cmd="rescan", game_id=game)["type"] == "result"
        yield {"seeder": seeder, "host": host, "watch": watch, "holder": holder,
               "scratch": scratch}  # fmt: skip
    finally:
        release_file(holder)
        if watch is not None:
            watch.close()
        seeder.kill()
        host.kill()


def test_auto_update_fetches_only_the_changed_chunks_and_installs_them(
    party: dict[str, Any],
) -> None:
    host, watch = party["host"], party["watch"]
    fetched = watch.wait_for("neon download finished", _finished("neon", "download"))
    assert fetched["ok"], fetched
    changed = (party["scratch"] / "neon" / "data01.eti").stat().st_size
    # Only the rewritten archive (and the few bytes of version.ini) crossed the network; the
    # other two archives (8 MiB) were copied from the local 1.0.
    assert changed <= fetched["bytes_fetched"] <= changed + 64 * 1024, fetched
    assert fetched["bytes"] >= fetched["bytes_fetched"]
    updated = watch.wait_for("neon update finished", _finished("neon", "update"))
    assert updated["ok"], updated
    game_dir = host.games / "neon"
    assert "version=1.1" in _version(game_dir)
    expected = payload_bytes("1:neon:1.1:1", len((game_dir / "local/neon/data01.bin").read_bytes()))
    assert (game_dir / "local" / "neon" / "data01.bin").read_bytes() == expected
    assert (game_dir / "local" / "neon" / "data01.bin").read_bytes() == _entry_bytes(
        party["scratch"] / "neon" / "data01.eti", "neon/data01.bin"
    )
    unchanged = (game_dir / "local" / "neon" / "data00.bin").read_bytes()
    assert unchanged == payload_bytes("1:neon:1.0:0", len(unchanged))


def test_a_game_in_use_waits_and_updates_after_its_process_exits(party: dict[str, Any]) -> None:
    host, watch, holder = party["host"], party["watch"], party["holder"]
    watch.wait_for(
        "busy waiting: in use",
        lambda e: e.get("game_id") == "busy" and e.get("state") == "waiting: in use",
    )
    assert "version=1.1" in _version(host.games / "busy")  # downloaded; local/ untouched
    local_file = host.games / "busy" / "local" / "busy" / "data00.bin"
    assert local_file.read_bytes() == payload_bytes("3:busy:1.0:0", local_file.stat().st_size)
    rows = [op for op in host.cli("ops").doc if op["game_id"] == "busy"]
    assert [(op["kind"], op["state"]) for op in rows] == [("update", "waiting: in use")]
    assert not any(_finished("busy", "update")(e) for e in watch.seen)
    holder.stdin.close()  # the "game" exits
    holder.wait(10)
    updated = watch.wait_for("busy update finished", _finished("busy", "update"))
    assert updated["ok"], updated
    assert local_file.read_bytes() == payload_bytes("3:busy:1.1:0", local_file.stat().st_size)


def test_a_pinned_game_stays_at_its_version(party: dict[str, Any]) -> None:
    host, watch = party["host"], party["watch"]
    # neon and busy were updated from the same library change: the updater has looked.
    watch.wait_for("neon update finished", _finished("neon", "update"))
    games = {g["id"]: g for g in host.cli("games").doc}
    assert games["pinned"]["pinned"] == "1.0"
    assert host.cli("game", "pinned").doc["pin"] == "1.0"
    assert games["pinned"]["newest_version"] == "1.1"
    assert "version=1.0" in _version(host.games / "pinned")
    assert not [e for e in watch.drain() if e.get("game_id") == "pinned"]
    # download without --version keeps the pinned version, which no peer offers any more.
    refused = host.cli("download", "pinned", "--no-install")
    assert refused.rc == 4, refused
    assert "pinned at 1.0" in refused.err
    doctor = {c["name"]: c for c in host.cli("doctor").doc}
    assert "pinned at 1.0" in doctor["auto-update"]["summary"]
    unpinned = host.cli("unpin", "pinned")
    assert unpinned.rc == 0, unpinned.err
    updated = watch.wait_for("pinned updated once unpinned", _finished("pinned", "update"))
    assert updated["ok"], updated
    assert "version=1.1" in _version(host.games / "pinned")


def test_a_failed_auto_update_backs_off_and_shows_in_ops_and_doctor(party: dict[str, Any]) -> None:
    host, watch = party["host"], party["watch"]
    failed = watch.wait_for("broken update failed", _finished("broken", "update"))
    assert not failed["ok"]

    def retry_row() -> Any:
        rows = [op for op in host.cli("ops").doc if op["game_id"] == "broken"]
        return next((op for op in rows if op["lane"] == "auto" and op.get("error")), None)

    row = wait_until("the failed auto-update in ops", retry_row, timeout=DEADLINE)
    assert (row["kind"], row["lane"], row["state"]) == ("update", "auto", "retry in 30s")
    assert 0 < row["retry_in"] <= 30
    assert failed["error"] in row["error"]
    history = [op for op in host.cli("ops", "--all").doc if op["game_id"] == "broken"]
    assert any(op["kind"] == "update" and op["ok"] is False for op in history), history
    doctor = {c["name"]: c for c in host.cli("doctor").doc}
    check = doctor["auto-update"]
    assert check["status"] == "warn"
    assert "broken 1.1" in check["summary"]
    assert "1 failed" in check["summary"]
    local = host.games / "broken" / "local" / "broken" / "data00.bin"
    assert local.read_bytes() == payload_bytes("4:broken:1.0:0", local.stat().st_size)  # kept


# ---------------------------------------------------------------- download --all, follow


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 MiB tmpfs as the mirroring host's game root (unmounted at teardown)."""
    mount = tmp_path / "host" / "games"
    mount.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_download_all_from_a_peer_stops_at_the_disk_limit_and_follow_adds_new_games(
    tmp_path: Path, small_disk: Path
) -> None:
    """a offers 6, 10 and 24 MiB games; the host's 96 MiB disk keeps 64 MiB free for every
    download (SPACE_MARGIN), so the 24 MiB one does not fit after the other two."""
    games = tmp_path / "a" / "games"
    games.mkdir(parents=True)
    sizes = {"small": 6, "medium": 10, "large": 24}
    for seed, (game, mib) in enumerate(sizes.items()):
        generate_game(games, game, mib * MIB, seed=seed, archives=1)
    write_catalog(games / "catalog.toml", [*sizes, "late"])
    a = Lanpeerd(tmp_path / "a", name="a").start()
    other = Lanpeerd(tmp_path / "other", name="other")
    generate_game(other.games, "elsewhere", MIB, seed=9, archives=1)
    write_catalog(other.games / "catalog.toml", ["elsewhere"])
    other.start()
    host = Lanpeerd(tmp_path / "host", name="host", extra=[
        "--peer", f"127.0.0.1:{a.port}", "--peer", f"127.0.0.1:{other.port}",
    ])  # fmt: skip
    assert host.games == small_disk
    watch = None
    try:
        host.start()
        for game in [*sizes, "elsewhere"]:
            wait_until(f"{game} offered", lambda g=game: _offered(host, g, "1.0"), timeout=DEADLINE)  # type: ignore[misc]
        watch = Watch(host)
        mirrored = host.cli("download", "--all", "--from", "a", "--no-install")
        assert mirrored.rc == 0, mirrored.err
        doc = mirrored.doc
        assert [e["game_id"] for e in doc["queued"]] == ["small", "medium"]  # smallest first
        assert doc["stopped_at"]["game_id"] == "large"
        assert "stopped at large" in doc["message"]
        assert "does not fit" in doc["message"]
        for game in ("small", "medium"):
            done = watch.wait_for(f"{game} downloaded", _finished(game, "download"))
            assert done["ok"], done
            assert "version=1.0" in _version(small_disk / game)
        assert not (small_disk / "large").exists()
        assert not (small_disk / "elsewhere").exists()  # --from a: other's game is not taken
        again = host.cli("download", "--all", "--from", "a", "--no-install")
        assert [e["game_id"] for e in again.doc["queued"]] == []  # nothing lacking that fits
        followed = host.cli("follow", "a", "--no-install")
        assert followed.rc == 0, followed.err
        generate_game(games, "late", 3 * MIB, seed=7, archives=1)
        assert ask_json(a, cmd="rescan")["type"] == "result"  # a new dir: rescan the library
        done = watch.wait_for("late downloaded by follow", _finished("late", "download"))
        assert done["ok"], done
        assert "version=1.0" in _version(small_disk / "late")
        assert not (small_disk / "large").exists()  # still does not fit
        assert host.cli("unfollow", "a").rc == 0
    finally:
        if watch is not None:
            watch.close()
        for daemon in (host, a, other):
            daemon.kill()


# ---------------------------------------------------------------- version variants


def test_two_variants_of_one_version_are_listed_and_the_popular_one_uses_both_sources(
    tmp_path: Path,
) -> None:
    """s1 and s2 hold the same bytes of twin 1.0, s3 another build also called 1.0."""
    seeders = []
    for name, seed in (("s1", 1), ("s2", 1), ("s3", 2)):
        daemon = Lanpeerd(tmp_path / name, name=name)
        generate_game(daemon.games, "twin", 24 * MIB, seed=seed, archives=2)
        write_catalog(daemon.games / "catalog.toml", ["twin"])
        seeders.append(daemon.start())
    peers = [arg for s in seeders for arg in ("--peer", f"127.0.0.1:{s.port}")]
    host = Lanpeerd(tmp_path / "host", name="host", extra=peers)
    watch = None
    try:
        host.start()
        ids = {s.name: ask_json(s, cmd="status")["result"]["peer_id"] for s in seeders}
        wait_until("three offers", lambda: _offered(host, "twin", "1.0", peers=3), timeout=DEADLINE)
        (game,) = host.cli("games").doc
        variants = {tuple(v["peers"]): v for v in game["variants"]}
        assert set(variants) == {tuple(sorted([ids["s1"], ids["s2"]])), (ids["s3"],)}
        assert all(v["version"] == "1.0" and v["size"] > 24 * MIB for v in variants.values())
        popular = variants[tuple(sorted([ids["s1"], ids["s2"]]))]["manifest_hash"]
        detail = host.cli("game", "twin").doc
        assert {tuple(v["peers"]) for v in detail["game"]["variants"]} == set(variants)
        human = host.cli("games", json_output=False)
        assert f"twin 1.0 variant {popular[:12]}" in human.out
        watch = Watch(host)
        started = _download(host, "twin", "--no-install")
        assert started.rc == 0, started.err
        assert f"variant {popular[:12]}, 2 source(s)" in started.doc["message"]
        finished = watch.wait_for("twin downloaded", _finished("twin", "download"))
        assert finished["ok"], finished
        assert sorted(finished["peers_used"]) == sorted([ids["s1"], ids["s2"]])
        payload = (host.games / "twin" / "data00.eti").read_bytes()
        assert payload == (seeders[0].games / "twin" / "data00.eti").read_bytes()
        named = host.cli("download", "twin", "--variant", popular[:8], "--no-install")
        assert named.rc == 0, named.err  # already this content: queued and done at once
        refused = host.cli("download", "twin", "--variant", "ffffffffff")
        assert refused.rc == 4, refused
    finally:
        if watch is not None:
            watch.close()
        for daemon in (host, *seeders):
            daemon.kill()


def test_a_peer_that_connects_with_a_newer_version_brings_the_update(tmp_path: Path) -> None:
    """An early host installed 1.0 from s1; s2 arrives later (add-peer) with 1.1."""
    s1, s2 = Lanpeerd(tmp_path / "s1", name="s1"), Lanpeerd(tmp_path / "s2", name="s2")
    generate_game(s1.games, "late-party", MIB, seed=5, archives=1)
    generate_game(s2.games, "late-party", MIB, seed=5, archives=1, version="1.1")
    for seeder in (s1, s2):
        write_catalog(seeder.games / "catalog.toml", ["late-party"])
        seeder.start()
    host = Lanpeerd(tmp_path / "host", name="host", extra=["--peer", f"127.0.0.1:{s1.port}"])
    watch = None
    try:
        host.start()
        wait_until("1.0 offered", lambda: _offered(host, "late-party", "1.0"), timeout=DEADLINE)
        first = _download(host, "late-party", "--wait")
        assert first.rc == 0, first.err
        watch = Watch(host)
        assert host.cli("add-peer", f"127.0.0.1:{s2.port}").rc == 0
        updated = watch.wait_for("the update", _finished("late-party", "update"))
        assert updated["ok"], updated
        local = host.games / "late-party" / "local" / "late-party" / "data00.bin"
        assert local.read_bytes() == payload_bytes("5:late-party:1.1:0", local.stat().st_size)
        game = host.cli("game", "late-party").doc["game"]
        assert (game["version"], game["installed_version"]) == ("1.1", "1.1")
    finally:
        if watch is not None:
            watch.close()
        for daemon in (host, s1, s2):
            daemon.kill()


def test_an_update_left_waiting_at_shutdown_is_finished_after_a_restart(tmp_path: Path) -> None:
    """local/ at 1.0 with 1.1 downloaded (the update waited for the game when the daemon
    stopped; here made with `--no-install` while auto-update was off): the next start updates
    it, with no peer needed (the bytes are here)."""
    seeder = Lanpeerd(tmp_path / "seeder", name="seeder")
    generate_game(seeder.games, "resumed", MIB, seed=6, archives=1)
    write_catalog(seeder.games / "catalog.toml", ["resumed"])
    seeder.start()
    peer = f"127.0.0.1:{seeder.port}"
    host = Lanpeerd(tmp_path / "host", name="host", extra=["--peer", peer, "--auto-update", "off"])
    try:
        host.start()
        wait_until("1.0 offered", lambda: _offered(host, "resumed", "1.0"), timeout=DEADLINE)
        assert _download(host, "resumed", "--wait").rc == 0
        generate_game(seeder.games, "resumed", MIB, seed=6, archives=1, version="1.1")
        assert ask_json(seeder, cmd="rescan", game_id="resumed")["type"] == "result"
        wait_until("1.1 offered", lambda: _offered(host, "resumed", "1.1"), timeout=DEADLINE)
        fetched = _download(host, "resumed", "--no-install", "--wait")
        assert fetched.rc == 0, fetched.err
        game = host.cli("game", "resumed").doc["game"]
        assert (game["version"], game["installed_version"]) == ("1.1", "1.0")
        assert host.stop() == 0
        seeder.kill()  # no peer: the update needs only what is on disk
        host.extra = host.extra[:2]  # auto-update back to its default, installed
        host.start()

        def updated() -> bool:
            game = host.cli("game", "resumed").doc["game"]
            return bool(game["installed_version"] == "1.1")

        wait_until("local/ at 1.1 after the restart", updated, timeout=DEADLINE)
        local = host.games / "resumed" / "local" / "resumed" / "data00.bin"
        assert local.read_bytes() == payload_bytes("6:resumed:1.1:0", local.stat().st_size)
    finally:
        for daemon in (host, seeder):
            daemon.kill()
