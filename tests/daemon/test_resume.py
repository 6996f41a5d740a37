"""Resume after kill -9: real seeder and leecher lanpeerd processes on loopback (SPEC §7).

The leecher is killed mid-download and restarted with the same dirs; without another
``download`` command the game finishes, installed as first asked, equal to the seeder's copy.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from lanpeer.library.samples import generate_game, write_catalog
from tests.daemon.harness import Lanpeerd, wait_until

GAME = "resumegame"
MIB = 1 << 20
CHUNK = 4 * MIB
SIZE = 32 * MIB
DEADLINE = 25.0

pytestmark = pytest.mark.timeout(60)


def game_entry(daemon: Any) -> dict[str, Any] | None:
    answer = daemon.cli("games")
    games = {g["id"]: g for g in answer.doc} if answer.rc == 0 else {}
    return games.get(GAME)


def download_op(daemon: Any) -> dict[str, Any] | None:
    answer = daemon.cli("ops")
    rows = [op for op in answer.doc if op["game_id"] == GAME] if answer.rc == 0 else []
    return rows[0] if rows else None


def tree_digest(game_dir: Path, names: list[str]) -> dict[str, str]:
    return {n: hashlib.sha256((game_dir / n).read_bytes()).hexdigest() for n in names}


def verified_bytes(part_dir: Path) -> int:
    """Bytes the resume record claims verified (staged files are sized to their full length)."""
    state = json.loads((part_dir / ".lanpeer.json").read_text())
    total = 0
    for path, encoded in state["files"].items():
        bits = base64.b64decode(encoded)
        if not any(bits):
            continue  # a file without a verified chunk may not exist yet
        size = (part_dir / path).stat().st_size
        for i in range((size + CHUNK - 1) // CHUNK):
            if bits[i >> 3] & (1 << (i & 7)):
                total += min(CHUNK, size - i * CHUNK)
    return total


def start_pair(tmp_path: Path, daemons: list[Any]) -> tuple[Any, Any]:
    seeder = Lanpeerd(tmp_path / "seeder", name="seeder", extra=["--max-upload", "8MB/s"])
    seeder.games.mkdir(parents=True)
    generate_game(seeder.games, GAME, SIZE, seed=3, archives=2)
    write_catalog(seeder.games / "catalog.toml", [GAME])
    daemons.append(seeder.start())
    leecher = Lanpeerd(
        tmp_path / "leecher", name="leecher", extra=["--peer", f"127.0.0.1:{seeder.port}"]
    )
    daemons.append(leecher.start())
    wait_until(
        "the hashed offer",
        lambda: (g := game_entry(leecher)) and g["ready_peers"],
        timeout=DEADLINE,
    )
    return seeder, leecher


def kill_at(leecher: Any, fraction: float) -> None:
    def far_enough() -> bool:
        op = download_op(leecher)
        return bool(op and op["bytes_total"] and op["bytes_done"] >= fraction * op["bytes_total"])

    wait_until(f"{fraction:.0%} of the download", far_enough, timeout=DEADLINE)
    leecher.kill()


@pytest.mark.process
def test_killed_download_resumes_and_installs_without_a_new_command(
    tmp_path: Path, daemons: list[Any]
) -> None:
    seeder, leecher = start_pair(tmp_path, daemons)
    assert leecher.cli("download", GAME).rc == 0  # installs afterwards (the default)
    kill_at(leecher, 0.4)
    part = leecher.games / GAME / ".lanpeer.part"
    saved = verified_bytes(part)
    assert 0 < saved < SIZE
    assert json.loads((part / ".lanpeer.json").read_text())["then_install"] is True

    leecher.start()
    first = wait_until(
        "progress",
        lambda: (op := download_op(leecher)) and op["bytes_total"] and op,
        timeout=DEADLINE,
    )
    assert first["bytes_done"] >= saved  # continued from the staging, not from zero
    wait_until(
        "installed",
        lambda: (g := game_entry(leecher)) and g["state"] == "installed",
        timeout=DEADLINE,
    )

    seeded = seeder.games / GAME
    names = [p.relative_to(seeded).as_posix() for p in seeded.rglob("*") if p.is_file()]
    assert tree_digest(leecher.games / GAME, names) == tree_digest(seeder.games / GAME, names)
    assert not part.exists()
    assert "resuming download of resumegame" in leecher.log_text()


@pytest.mark.process
def test_cancel_of_a_resumed_download_removes_the_staging(
    tmp_path: Path, daemons: list[Any]
) -> None:
    _seeder, leecher = start_pair(tmp_path, daemons)
    assert leecher.cli("download", GAME, "--no-install").rc == 0
    kill_at(leecher, 0.2)
    part = leecher.games / GAME / ".lanpeer.part"
    assert json.loads((part / ".lanpeer.json").read_text())["then_install"] is False

    leecher.start()
    wait_until("the resumed operation", lambda: download_op(leecher), timeout=DEADLINE)
    answer = leecher.cli("cancel", GAME)
    assert answer.rc == 0, answer.out + answer.err
    assert not part.exists()
    assert download_op(leecher) is None
    entry = game_entry(leecher)
    assert entry is not None
    assert not entry["downloaded"]


def test_resume_record_keeps_then_install_and_old_records_mean_no_install(tmp_path: Path) -> None:
    from lanpeer.download.staging import PartDir

    part = PartDir(tmp_path / "g")
    part.dir.mkdir(parents=True)
    part.then_install = True
    part.save(b"\x01" * 32, {})
    assert PartDir(tmp_path / "g").saved_then_install() is True
    record = part.dir / ".lanpeer.json"
    old = {k: v for k, v in json.loads(record.read_text()).items() if k != "then_install"}
    record.write_text(json.dumps(old))  # as written before then_install was recorded
    assert PartDir(tmp_path / "g").saved_manifest_hash() == b"\x01" * 32
    assert PartDir(tmp_path / "g").saved_then_install() is False
