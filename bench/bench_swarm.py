"""Swarm vs --no-swarm: 1 seeder, N leechers started together, every link capped (netns lab).

Each host's link is capped both ways with tbf (toward the host at its switch port, and out of
the host on its eth0), so the run is link-bound: the seeder's uplink is what a no-swarm party
shares N ways, the leechers' uplinks are what the swarm adds. Prints each leecher's time, the
last one's against the ideal (``size / cap``: every host receiving at its link speed at once),
the ratio, the target (1.25 x ideal + 5 s) and the CPU-seconds of every daemon.

    sudo uv run python -m bench.bench_swarm --size 256 --leechers 6 --cap 100

Needs root, ``ip`` and ``tc`` (the lab of tests/netlab/lab.py); never runs a daemon in the
root network namespace. Not a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.lanlab import MiB, _cpu, game_bytes, make_game
from tests.scenarios.harness import Peer, finished_line, wait_until
from tests.scenarios.world import World

GAME = "swarmbench"


def cap_every_link(world: World, mbit: int) -> None:
    rate = f"{mbit}mbit"
    for peer in world.peers:
        world.rate(peer, rate)
        tbf = ["tc", "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", rate,
               "burst", "256kb", "latency", "50ms"]  # fmt: skip
        world.lab.on(world._host(peer), tbf)  # out of the host


def run(game_dir: Path, leechers: int, mbit: int, swarm: bool) -> dict[str, Any]:
    options = [] if swarm else ["--no-swarm"]
    with tempfile.TemporaryDirectory(prefix="lpswarm") as tmp:
        world = World(Path(tmp), 1 + leechers)
        try:
            if world.mode != "netns":
                return {"skipped": world.why}
            s = world.add("s", extra=options)
            others = [world.add(f"l{i}", extra=options) for i in range(1, leechers + 1)]
            s.games.mkdir(parents=True)
            # Hard links: the same bytes without a copy.
            shutil.copytree(game_dir, s.games / GAME, copy_function=os.link)
            shutil.copy(game_dir.parent / "catalog.toml", s.games / "catalog.toml")
            world.start()
            wait_until(lambda: all(sum(p["connected"] for p in x.peers()) == leechers
                                   for x in others), timeout=120, what="a full mesh")  # fmt: skip
            for leecher in others:
                leecher.wait_sees_game(GAME, timeout=600)
            cap_every_link(world, mbit)
            daemons: list[Peer] = [s, *others]
            before = {p.name: _cpu(p.proc.pid) for p in daemons if p.proc is not None}
            start = time.monotonic()
            waiting = [leecher.download_waiting(GAME) for leecher in others]
            results = [finished_line(w, timeout=3600) for w in waiting]
            wall = time.monotonic() - start
            cpu = {p.name: _cpu(p.proc.pid) - before[p.name] for p in daemons if p.proc}
        finally:
            world.close()
    failed = [r.get("error") for r in results if not r.get("ok")]
    if failed:
        return {"failed": failed}
    return {
        "seconds": [float(r["seconds"]) for r in results],
        "from_partial": [int(r.get("bytes_from_partial", 0)) for r in results],
        "wall": wall,
        "cpu": cpu,
    }


def report(rows: dict[str, dict[str, Any]], size: int, leechers: int, mbit: int) -> None:
    ideal = size / (mbit * 1e6 / 8)
    print(f"\n1 seeder -> {leechers} leechers, {size / MiB:.0f} MiB game, every link capped "
          f"{mbit} Mbit/s both ways; ideal (size / cap) {ideal:.1f} s, no-swarm bound "
          f"(N x size / cap) {leechers * ideal:.1f} s; load {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'mode':<10} {'each leecher (s)':<48} {'last':>7} {'last/ideal':>10} "
          f"{'target':>7} {'partial %':>9}  cpu-s (s, l1..)")  # fmt: skip
    for mode, row in rows.items():
        if "seconds" not in row:
            print(f"{mode:<10} {row}")
            continue
        secs = row["seconds"]
        last = max(secs)
        target = 1.25 * ideal + 5
        partial = 100 * sum(row["from_partial"]) / (size * len(secs))
        each = " ".join(f"{x:.1f}" for x in secs)
        cpu = " ".join(f"{v:.1f}" for v in row["cpu"].values())
        ok = "ok" if last <= target else "MISSED"
        print(f"{mode:<10} {each:<48} {last:>7.1f} {last / ideal:>10.2f} {target:>6.1f}"
              f"{ok[0]} {partial:>8.0f}%  {cpu}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="game size in MiB (>= 256)")
    parser.add_argument("--leechers", type=int, default=6)
    parser.add_argument("--cap", type=int, default=100, help="Mbit/s per link, each way")
    parser.add_argument("--only", choices=["swarm", "no-swarm"], help="run one mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lpswarmgame") as tmp:
        game_dir = make_game(Path(tmp), GAME, args.size)
        size = game_bytes(game_dir)
        rows = {}
        for mode in ("swarm", "no-swarm"):
            if args.only in (None, mode):
                rows[mode] = run(game_dir, args.leechers, args.cap, swarm=mode == "swarm")
                print(mode, rows[mode], file=sys.stderr)
    report(rows, size, args.leechers, args.cap)


if __name__ == "__main__":
    main()
