"""Swarm: downloaders serve each other the chunks they verified (SPEC §7a; netns lab only).

Every host's link is capped both ways with tbf (toward the host at the switch, and out of the
host on its own eth0), so the seeder's uplink is the scarce resource and the leechers' uplinks
are what a swarm adds. Games are small (32-48 MiB) so each scenario is link-bound and short.

Scenarios: 1 seeder + 5 leechers started together; a partial source that serves corrupt bytes;
a partial source killed with -9 mid-way; one that cancels; a late joiner; what `game`, `ops`
and `uploads` say of partial sources while everyone downloads.
"""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

import pytest

from lanpeer.net.swarm import CORRUPT_ENV
from tests.scenarios.gamefiles import leftovers, seed, tree_hash
from tests.scenarios.harness import EventStream, Peer, ScenarioTimeout, finished_line, wait_until
from tests.scenarios.world import World

pytestmark = pytest.mark.process

CAP = "80mbit"  # 10 MB/s per host each way: 48 MiB alone ~5 s; no swarm, 5 leechers ~25 s


def cap_every_link(lan: World, rate: str = CAP) -> None:
    for peer in lan.peers:
        lan.rate(peer, rate)  # toward the host, at its switch port
        host = lan._host(peer)
        lan.lab.on(host, ["tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", rate,
                          "burst", "256kb", "latency", "50ms"])  # fmt: skip


def start_lan(
    world: Any, game: Any, leechers: int, mib: int, corrupt: str | None = None, cap: str = CAP
) -> tuple[Peer, list[Peer]]:
    """A seeder and ``leechers`` in a full mesh, every link capped; ``corrupt`` names a
    leecher whose daemon serves corrupt partial chunks (the CORRUPT_ENV fault)."""
    lan: World = world(1 + leechers)
    lan.require_lab("tbf caps on every link")
    s = lan.add("s")
    others = [lan.add(f"l{i}") for i in range(1, leechers + 1)]
    for peer in others:
        if peer.name == corrupt:
            launch = peer.launch
            peer.launch = lambda argv, log, launch=launch: launch(
                ["env", f"{CORRUPT_ENV}=1", *argv], log
            )
    seed(s.games, game("swarmquest", mib))
    lan.start()
    wait_until(lambda: all(sum(p["connected"] for p in x.peers()) == leechers for x in others),
               timeout=60, what="a full mesh")  # fmt: skip
    for leecher in others:
        leecher.wait_sees_game("swarmquest", timeout=30)
    cap_every_link(lan, cap)
    return s, others


def ids(peers: list[Peer]) -> dict[str, str]:
    return {p.status()["peer_id"]: p.name for p in peers}


def check_copies(s: Peer, leechers: list[Peer], results: list[dict[str, Any]]) -> None:
    expected = tree_hash(s.games / "swarmquest")
    for leecher, result in zip(leechers, results, strict=True):
        assert result["ok"], (leecher.name, result, leecher.log_tail())
        assert tree_hash(leecher.games / "swarmquest") == expected, leecher.name
        assert leftovers(leecher.games / "swarmquest") == []


def test_one_seeder_five_leechers_trade(world, game) -> None:
    s, leechers = start_lan(world, game, 5, 48)
    names = ids(leechers)
    waiting = [leecher.download_waiting("swarmquest") for leecher in leechers]
    results = [finished_line(done, timeout=150) for done in waiting]
    check_copies(s, leechers, results)
    traded = [
        (leecher.name, [names[p] for p in r["peers_used"] if p in names])
        for leecher, r in zip(leechers, results, strict=True)
    ]
    assert any(used for _, used in traded), (traded, results)
    assert sum(r["bytes_from_partial"] for r in results) > 0, results
    print("swarm 1+5 (seconds, bytes from partial sources):",
          [(r["seconds"], r["bytes_from_partial"]) for r in results], traded)  # fmt: skip


def test_a_corrupt_partial_source_is_dropped(world, game) -> None:
    s, leechers = start_lan(world, game, 3, 32, corrupt="l1")
    bad = ids(leechers[:1])
    waiting = [leecher.download_waiting("swarmquest") for leecher in leechers]
    results = [finished_line(done, timeout=150) for done in waiting]
    check_copies(s, leechers, results)
    (bad_id,) = bad
    dropped = [p.name for p in leechers[1:] if f"peer {bad_id} sent a chunk that failed"
               in p.log.read_text()]  # fmt: skip
    assert dropped, "no leecher ever got (and rejected) a corrupt chunk from l1"
    for result in results[1:]:  # nothing l1 served counted: every chunk came verified
        assert bad_id not in result["bytes_by_peer"], result


def test_partial_sources_killed_or_cancelling_fail_nobody(world, game) -> None:
    s, leechers = start_lan(world, game, 4, 48)
    killed, cancelling, rest = leechers[0], leechers[1], leechers[2:]
    waiting = {leecher.name: leecher.download_waiting("swarmquest") for leecher in leechers}
    stream = killed.watch()
    killed.wait_progress(stream, "swarmquest", 0.4, timeout=60)
    killed.signal(signal.SIGKILL)
    assert cancelling.cli("cancel", "swarmquest", check=False).rc == 0
    results = [finished_line(waiting[leecher.name], timeout=150) for leecher in rest]
    check_copies(s, rest, results)
    assert not finished_line(waiting[cancelling.name], timeout=30)["ok"]
    waiting[killed.name].kill()
    waiting[killed.name].communicate(timeout=5)


def test_a_late_joiner_gets_most_bytes_from_partial_sources(world, game) -> None:
    s, leechers = start_lan(world, game, 4, 48)
    seeder_id = s.status()["peer_id"]
    early, late = leechers[:3], leechers[3]
    waiting = [leecher.download_waiting("swarmquest") for leecher in early]
    stream = early[0].watch()
    early[0].wait_progress(stream, "swarmquest", 0.5, timeout=60)
    late_wait: subprocess.Popen[bytes] = late.download_waiting("swarmquest")
    results = [finished_line(done, timeout=150) for done in waiting]
    last = finished_line(late_wait, timeout=150)
    check_copies(s, [*early, late], [*results, last])
    fetched = sum(last["bytes_by_peer"].values())
    from_seeder = last["bytes_by_peer"].get(seeder_id, 0)
    print("late joiner:", last)
    assert fetched > 0
    assert from_seeder < fetched / 2, last  # most came from the other downloaders
    assert last["bytes_from_partial"] > 0, last


def test_the_cli_shows_partial_sources_and_what_they_upload(world, game) -> None:
    # 3 MB/s links, 24 MiB: ~8 s of downloading for both, time for a few peer-cli calls.
    s, (l1, l2) = start_lan(world, game, 2, 24, cap="24mbit")
    s_id = s.status()["peer_id"]
    streams = [l1.watch(), l2.watch()]
    waiting = [leecher.download_waiting("swarmquest") for leecher in (l1, l2)]
    try:
        row, op, up = watch_partial_sources(s_id, l1, l2, streams)
    except BaseException:
        for proc in waiting:  # a failed look must not leave `download --wait` behind
            proc.kill()
            proc.communicate(timeout=5)
        raise
    results = [finished_line(done, timeout=150) for done in waiting]
    check_copies(s, [l1, l2], results)
    print("cli partial sources:", row, op["sources"], up)


def first_upload(
    candidates: list[tuple[Peer, str, EventStream]], timeout: float
) -> tuple[Peer, str, EventStream]:
    """The first (uploader, downloader id, uploader's stream) whose stream says an upload to
    that downloader started; each stream is read in turn, a short wait each."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for uploader, to_id, events in candidates:
            event = events.next(0.1)
            if (
                event is not None
                and event.get("event") == "upload"
                and (event["state"] == "started" and event["peer_id"] == to_id)
            ):
                return uploader, to_id, events
    seen = [events.seen[-3:] for _, _, events in candidates]
    raise ScenarioTimeout(f"no leecher uploaded to the other within {timeout:.0f}s; saw {seen}")


def watch_partial_sources(
    s_id: str, l1: Peer, l2: Peer, streams: list[EventStream]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """While both download: l2's `game` and `ops` name l1 as a partial source; one leecher's
    events say it started uploading to the other before its own download ended (one stream, so
    the order is exact), and its `uploads` names the other. Which one uploads is the swarm's
    choice: a leecher that stays ahead never needs the other's chunks."""
    l1_id, l2_id = l1.status()["peer_id"], l2.status()["peer_id"]

    def partial_rows() -> dict[str, Any] | None:
        doc = l2.cli("game", "swarmquest").doc
        rows = [r for r in doc["game"]["sources"] if r["partial"] and r["held_chunks"]]
        return doc if rows and doc["operation"] is not None else None

    doc = wait_until(partial_rows, timeout=30, what="l2's `game` listing a partial source")
    full = [r for r in doc["game"]["sources"] if not r["partial"]]
    (row,) = [r for r in doc["game"]["sources"] if r["partial"]]
    assert [r["peer_id"] for r in full] == [s_id]
    assert (full[0]["held_chunks"], full[0]["held_bytes"]) == (None, None)
    assert row["peer_id"] == l1_id
    assert (row["version"], row["manifest_hash"]) == (full[0]["version"], full[0]["manifest_hash"])
    assert 0 < row["held_bytes"] < 24 << 20
    assert doc["game"]["partial_peers"] == [l1_id]
    assert doc["game"]["peers"] == [s_id]

    def l2_op() -> dict[str, Any] | None:
        ops = [o for o in l2.cli("ops").doc if o["game_id"] == "swarmquest"]
        return ops[0] if ops and ops[0]["partial_sources"] else None

    op = wait_until(l2_op, timeout=30, what="l2's `ops` row naming a partial source")
    assert op["partial_sources"] == [l1_id]
    assert set(op["sources"]) == {s_id, l1_id}

    uploader, to_id, events = first_upload(
        [(l1, l2_id, streams[0]), (l2, l1_id, streams[1])], timeout=30
    )
    events.wait_event(lambda e: e.get("event") == "progress" and e["game_id"] == "swarmquest"
                      and e["state"] == "downloading", timeout=30,
                      what="the uploader still downloading after that")  # fmt: skip

    def uploads() -> list[dict[str, Any]] | None:
        ups = [u for u in uploader.cli("uploads").doc if u["peer_id"] == to_id and u["bytes"] > 0]
        return ups or None

    (up,) = wait_until(uploads, timeout=30, what="the uploader's `uploads` naming the other")
    assert up["game_id"] == "swarmquest"
    return row, op, up
