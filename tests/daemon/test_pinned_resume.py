"""A `--version` pin survives a restart mid-download (issue 13: the resumed download once
fetched and committed the newest version instead)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from lanpeer.library.samples import generate_game, write_catalog
from tests.daemon.harness import Lanpeerd, ask_raw

pytestmark = pytest.mark.process

GAME = "pinned-game"
SIZE = 24 << 20
DEADLINE = 60.0


def raw(daemon: Lanpeerd, **request: Any) -> Any:
    return json.loads(ask_raw(daemon.socket, json.dumps(request).encode() + b"\n"))["result"]


def wait_until(predicate: Any, what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)  # poll interval; the deadline bounds the loop
    raise AssertionError(f"timed out waiting for {what}")


def seeder(home: Path, version: str, seed: int, daemons: list[Lanpeerd]) -> Lanpeerd:
    daemon = Lanpeerd(home, name=f"seeder-{version}", extra=["--max-upload", "6MB/s"])
    daemon.games.mkdir(parents=True)
    generate_game(daemon.games, GAME, SIZE, seed=seed, archives=2, version=version)
    write_catalog(daemon.games / "catalog.toml", [GAME])
    daemons.append(daemon.start())
    return daemon


def offered(daemon: Lanpeerd, version: str) -> bool:
    game = next((g for g in raw(daemon, cmd="games")["games"] if g["id"] == GAME), None)
    return bool(game and any(s["version"] == version and s["manifest_hash"]
                             for s in game["sources"]))  # fmt: skip


def test_a_pinned_download_resumes_the_pinned_version(
    tmp_path: Path, daemons: list[Lanpeerd]
) -> None:
    old = seeder(tmp_path / "old", "1.0", 1, daemons)
    new = seeder(tmp_path / "new", "1.1", 2, daemons)
    both = ["--peer", f"127.0.0.1:{old.port}", "--peer", f"127.0.0.1:{new.port}"]
    leecher = Lanpeerd(tmp_path / "leecher", name="leecher", extra=both)
    daemons.append(leecher.start())
    wait_until(lambda: offered(leecher, "1.0") and offered(leecher, "1.1"), "both offers")
    assert leecher.cli("download", GAME, "--version", "1.0", "--no-install").rc == 0
    saved = leecher.games / GAME / ".lanpeer.part" / ".lanpeer.json"
    wait_until(saved.is_file, "the resume state")  # saved every few verified chunks
    leecher.kill()
    state = json.loads(saved.read_text())
    assert state["pin"] == "1.0"

    # Back with only the newer version's seeder in reach: the pinned download must wait.
    leecher.extra = ["--peer", f"127.0.0.1:{new.port}"]
    leecher.start()
    wait_until(lambda: offered(leecher, "1.1"), "the newer offer")
    (op,) = raw(leecher, cmd="ops")["ops"]
    assert op["state"] == "stalled", op  # once: it restarted on 1.1 here
    assert leecher.cli("add-peer", f"127.0.0.1:{old.port}").rc == 0
    wait_until(lambda: raw(leecher, cmd="ops")["ops"] == [], "the download to finish")
    assert "version=1.0" in (leecher.games / GAME / "version.ini").read_text()


def test_a_stalled_download_says_why_and_keeps_its_name_and_size(
    tmp_path: Path, daemons: list[Lanpeerd]
) -> None:
    """Once: no reason anywhere, and the game's row lost its name and size."""
    source = seeder(tmp_path / "old", "1.0", 1, daemons)
    leecher = Lanpeerd(tmp_path / "leecher", name="leecher",
                       extra=["--peer", f"127.0.0.1:{source.port}"])  # fmt: skip
    daemons.append(leecher.start())
    wait_until(lambda: offered(leecher, "1.0"), "the offer")
    before = next(g for g in raw(leecher, cmd="games")["games"] if g["id"] == GAME)
    assert leecher.cli("download", GAME, "--no-install").rc == 0
    wait_until(lambda: any(op["bytes_done"] for op in raw(leecher, cmd="ops")["ops"]), "bytes")
    source.stop()  # the only source leaves (Goodbye)

    def stalled() -> Any:
        ops = raw(leecher, cmd="ops")["ops"]
        return ops[0] if ops and ops[0]["state"] == "stalled" else None

    op = wait_until(stalled, "the download to stall")
    assert "no connected peer serves this version" in op["reason"]
    row = next(g for g in raw(leecher, cmd="games")["games"] if g["id"] == GAME)
    assert (row["name"], row["size"]) == (before["name"], before["size"])
    assert "no connected peer serves" in leecher.cli("ops", json_output=False).out
    assert leecher.cli("cancel", GAME).rc == 0
