"""The first download of a game its seeder is still hashing (a cold disk): two real lanpeerd
processes and ``peer-cli --json download --wait``. The download waits, shows how far the
seeder's hashing has got as it moves, then completes with the seeder's exact files, and the
time it reports is the download's, not the wait's.

The seeder hashes no faster than ``LANPEER_FAULT_HASH_RATE`` (the test-only fault switch), so a
28 MiB game takes ~14 s to hash: it outlasts the request's own 5 s wait by several seconds.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from lanpeer.library.samples import generate_game, write_catalog
from lanpeer.library.scanner import HASH_RATE_ENV
from tests.daemon.harness import PEER_CLI, Lanpeerd
from tests.scenarios.gamefiles import tree_hash

pytestmark = pytest.mark.process

MIB = 1 << 20
GAME = "cold-game"


def test_a_download_waits_for_the_seeders_hash_showing_its_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    games = tmp_path / "seeder" / "games"
    games.mkdir(parents=True)
    generate_game(games, GAME, 28 * MIB, seed=7, archives=2)
    write_catalog(games / "catalog.toml", [GAME])
    monkeypatch.setenv(HASH_RATE_ENV, str(2 * MIB))  # the seeder's disk only: ~14 s
    seeder = Lanpeerd(tmp_path / "seeder", name="seeder").start()
    monkeypatch.delenv(HASH_RATE_ENV)
    leecher = Lanpeerd(tmp_path / "leecher", name="leecher", extra=["--auto-update", "off"])
    try:
        leecher.start()
        added = leecher.cli("add-peer", f"127.0.0.1:{seeder.port}")
        assert added.rc == 0, added.err
        argv = [PEER_CLI, "--socket", str(leecher.socket), "--json", "download", GAME,
                "--no-install", "--wait"]  # fmt: skip
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as follow:
            assert follow.stdout is not None
            events, seen_at = [], []  # each line, and when it arrived
            for line in follow.stdout:
                events.append(json.loads(line))
                seen_at.append(time.monotonic())
            assert follow.wait(timeout=60) == 0
        waiting = [e for e in events if e["event"] == "progress" and e.get("hashing")]
        hashed = [e["hashing"]["hashed_bytes"] for e in waiting]
        assert len(set(hashed)) >= 2, waiting  # the seeder's progress, as it moved
        assert hashed == sorted(hashed)
        last = waiting[-1]
        assert last["state"] == "stalled"
        assert last["hashing"]["name"] == "seeder"
        assert last["hashing"]["total_bytes"] >= 28 * MIB
        assert last["reason"].startswith("waiting for seeder (")
        assert "% (" in last["reason"]
        finished = events[-1]
        assert finished["event"] == "finished"
        assert finished["ok"] is True
        # Its time is the download's, not the wait (once: "25.2 MB in 6.1 s (4.1 MB/s)" for a
        # copy of 0.3 s). The wait we watched lasted seconds; the time reported leaves it out.
        watched = seen_at[-1] - seen_at[events.index(waiting[0])]
        assert finished["seconds"] < watched - 2.0, (finished["seconds"], watched)
        assert tree_hash(leecher.games / GAME) == tree_hash(games / GAME)
    finally:
        leecher.kill()
        seeder.kill()
