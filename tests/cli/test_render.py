"""Human output of peer-cli (issue 13): ids never cut, 80 columns, one unit system."""

from __future__ import annotations

import io
import time

from lanpeer_cli import render
from lanpeer_proto import control as c
from lanpeer_proto import units
from rich.console import Console

LONG_ID = "neon-racer-championship-edition-deluxe-remastered"


def _console(width: int = 80) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=width, color_system=None), out


def _game(game_id: str, **extra: object) -> c.GameEntry:
    fields: dict[str, object] = {
        "id": game_id, "name": "Neon Racer: Championship Edition (Deluxe)", "version": "1.0.12",
        "downloaded": True, "installed": True, "state": "installed", "size": 123_456_789_012,
        "peers": ["A" * 52, "B" * 52], "newest_version": "1.1.0", "update_available": True,
    }  # fmt: skip
    return c.GameEntry.model_validate({**fields, **extra})


def test_games_table_keeps_every_id_whole_within_80_columns() -> None:
    console, out = _console()
    ids = [LONG_ID, "neon-racer", "x" * 64]
    render.games(console, c.GamesResult(games=[_game(i) for i in ids]))
    text = out.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert all(i in text.split() for i in ids), text
    assert "…" not in text


def test_ops_rows_stay_on_one_line_at_80_columns() -> None:
    console, out = _console()
    op = c.OperationInfo(
        game_id="neon-racer-championship", kind="download", state="running", lane="download",
        bytes_done=1_500_000_000, bytes_total=3_000_000_000, rate=12_500_000, eta=120,
        sources=["A" * 52, "B" * 52, "C" * 52],
    )  # fmt: skip
    render.ops(console, [op])
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    rows = [line for line in lines if "neon-racer-championship" in line]
    assert len(rows) == 1, out.getvalue()
    assert len(lines) <= 4, out.getvalue()  # header, rule, one row (once: four lines a row)
    assert "1.5 GB/3.0 GB 50%" in rows[0]


def test_peers_table_has_a_connected_column() -> None:
    console, out = _console(120)
    peer = c.PeerEntry(peer_id="P" * 52, name="bob", address="10.0.0.2:47600", proto_ver="1.0",
                       library_rev=3, last_seen=time.time(), games=4, connected=False)  # fmt: skip
    render.peers(console, c.PeersResult(peers=[peer]))
    header, *_ = out.getvalue().strip().splitlines()
    assert "connected" in header
    assert " no " in out.getvalue()
    assert "rtt" in header
    assert " - " in out.getvalue()  # not measured
    console, out = _console(120)
    render.peers(console, c.PeersResult(peers=[peer.model_copy(update={"rtt_ms": 0.42})]))
    assert " 0.4 ms " in out.getvalue()


def test_one_unit_system_everywhere() -> None:
    # a cap typed as 20MB/s reads as 20.0 MB/s (once: 19.1 MiB/s in doctor, MB/s in bars)
    assert units.rate(20_000_000) == "20.0 MB/s"
    assert units.size(999) == "999 B"
    assert units.size(1_500_000_000) == "1.5 GB"
    assert render.rate(20_000_000) == "20.0 MB/s"
    console, out = _console()
    finished = c.FinishedEvent(game_id="g", ok=True, bytes=50_000_000, seconds=2.0)
    assert "50.0 MB in 2.0 s (25.0 MB/s)" in render.finished_line(finished)
    progress = c.ProgressEvent(
        game_id="g", kind="download", state="running",
        bytes_done=5_000_000, bytes_total=10_000_000, rate=1_000_000,
    )  # fmt: skip
    events = [progress]
    list(render.progress_bars(console, events))
    assert "5.0/10.0 MB" in out.getvalue()


def test_progress_without_a_total_shows_no_fake_bytes() -> None:
    assert render.progress_text(0, 0) == "-"
    event = c.ProgressEvent(game_id="g", kind="install", state="installing", bytes_done=0,
                            bytes_total=0)  # fmt: skip
    assert "0 B/0 B" not in render.event_line(event)
    assert " - " in render.event_line(event)


def test_a_game_being_hashed_shows_its_percentage() -> None:
    console, out = _console()
    game = _game("neon-racer", state="hashing", hashed_bytes=25, hash_total=100)
    render.games(console, c.GamesResult(games=[game]))
    assert "hashing 25%" in out.getvalue()


def test_a_download_waiting_for_its_seeders_hash_shows_that_progress() -> None:
    console, out = _console()
    hashing = c.HashingInfo(
        peer_id="A" * 52, name="seeder", hashed_bytes=8_200_000_000, total_bytes=20_000_000_000
    )
    reason = "waiting for seeder (AAAAAAAA) to hash it: 41 % (8.2 GB of 20.0 GB)"
    event = c.ProgressEvent(
        game_id="g", kind="download", state="stalled", bytes_done=0, bytes_total=0,
        reason=reason, hashing=hashing,
    )  # fmt: skip
    assert render.event_line(event) == f"progress   g download stalled: {reason}"
    list(render.progress_bars(console, [event]))
    assert "8.2/20.0 GB" in out.getvalue()
    assert "waiting for seeder to hash it" in out.getvalue()


def test_ops_shows_how_far_the_seeder_of_a_waiting_download_has_hashed() -> None:
    console, out = _console()
    hashing = c.HashingInfo(peer_id="A" * 52, name="seeder", hashed_bytes=41, total_bytes=100)
    op = c.OperationInfo(
        game_id=LONG_ID, kind="download", state="stalled", lane="download", eta=0.0,
        reason="waiting for seeder (AAAAAAAA) to hash it: 41 % (41 B of 100 B)", hashing=hashing,
    )  # fmt: skip
    render.ops(console, [op])
    row = next(line for line in out.getvalue().splitlines() if LONG_ID in line)
    assert "hash 41%" in row
    assert "0:00:00" not in row  # once: a stalled wait showed an ETA of zero
    assert "to hash it: 41 %" in out.getvalue()
