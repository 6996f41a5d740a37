"""Library benchmark: hashing vs a plain read, warm rescan of many games, one touched game.

Usage: uv run python bench/bench_library.py [--hash-mib 1024] [--games 1000] [--game-kib 64]
Prints a table and writes bench/out/bench_library.json. Not run by the tests.

Every lanpeer figure sits next to a baseline measured in the same run on the same bytes:
- hashing a game cold (no cached chunk hashes) vs reading the same files with plain reads;
- a warm rescan of N games (fingerprints unchanged) vs a bare top-level listing of those dirs;
- the rescan after touching one game vs the warm rescan (only that game is walked and hashed).
Files are in the page cache for both sides (the disk is not what is measured).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from lanpeer.library import GameLibrary
from lanpeer.library.samples import generate_game, generate_library, write_catalog

OUT = Path(__file__).parent / "out" / "bench_library.json"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    await fn()
    return time.perf_counter() - wall, _cpu() - cpu


def plain_read(game_dir: Path) -> int:
    """Baseline: read every file of the game in 4 MiB pieces and throw the bytes away."""
    total = 0
    buffer = bytearray(4 << 20)
    for path in sorted(game_dir.iterdir()):
        if path.is_file():
            with open(path, "rb", buffering=0) as f:
                while n := f.readinto(buffer):
                    total += n
    return total


def bare_listing(root: Path) -> int:
    """Baseline: list the root and lstat the top level of each game dir (the least a scan does)."""
    count = 0
    with os.scandir(root) as games:
        for game in games:
            if game.is_dir(follow_symlinks=False):
                with os.scandir(game.path) as entries:
                    count += sum(1 for e in entries if e.stat(follow_symlinks=False))
    return count


async def bench_hashing(work: Path, mib: int) -> dict[str, Any]:
    root = work / "hash-root"
    game_dir = generate_game(root, "big", mib << 20, seed=1, archives=4)
    write_catalog(root / "catalog.toml", ["big"])
    plain_read(game_dir)  # warm the page cache for both sides
    t0, c0 = time.perf_counter(), _cpu()
    size = plain_read(game_dir)
    read_s, read_cpu = time.perf_counter() - t0, _cpu() - c0
    async with GameLibrary(
        [root], work / "hash-state", watch=False, background_hashing=False
    ) as library:
        hash_s, hash_cpu = await _timed(lambda: library.wait_manifest("big"))
    return {
        "bytes": size,
        "read_s": read_s,
        "read_cpu_s": read_cpu,
        "read_mib_s": size / 2**20 / read_s,
        "hash_s": hash_s,
        "hash_cpu_s": hash_cpu,
        "hash_mib_s": size / 2**20 / hash_s,
        "hash_vs_read": hash_s / read_s,
    }


async def bench_rescan(work: Path, games: int, game_kib: int) -> dict[str, Any]:
    root, state = work / "many", work / "many-state"
    generate_library(root, games, game_kib << 10, seed=2)
    t0 = time.perf_counter()
    async with GameLibrary([root], state, watch=False) as library:
        await _wait_all_hashed(library)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bare_listing(root)
    bare_s = time.perf_counter() - t0
    restart_s, _ = await _timed(lambda: _start_and_close(root, state))
    async with GameLibrary([root], state, watch=False, background_hashing=False) as library:
        scans = library.game_scans
        warm_s, warm_cpu = await _timed(library.rescan)
        warm_walked = library.game_scans - scans
        (root / "game-0007" / "extra.bin").write_bytes(os.urandom(1 << 20))
        hashed_before = library.files_hashed
        touched_s, touched_cpu = await _timed(library.rescan)
        rehash_s, _ = await _timed(lambda: library.wait_manifest("game-0007"))
        changed = [g.id for g in library.local_games() if g.manifest_hash is None]
        files_hashed = library.files_hashed - hashed_before
    return {
        "games": games,
        "bare_listing_s": bare_s,
        "first_start_hash_all_s": first_s,
        "restart_s": restart_s,
        "warm_rescan_s": warm_s,
        "warm_rescan_cpu_s": warm_cpu,
        "warm_games_inspected": warm_walked,
        "touched_rescan_s": touched_s,
        "touched_rescan_cpu_s": touched_cpu,
        "touched_rehash_s": rehash_s,
        "touched_files_hashed": files_hashed,
        "games_left_unhashed": changed,
    }


async def _start_and_close(root: Path, state: Path) -> None:
    async with GameLibrary([root], state, watch=False, background_hashing=False):
        pass


async def _wait_all_hashed(library: GameLibrary) -> None:
    changed = asyncio.Event()
    library.add_listener(lambda _rev: changed.set())
    async with asyncio.timeout(600):
        while any(s.manifest_hash is None for s in library.snapshot()):
            changed.clear()
            await changed.wait()


def _table(hashing: dict[str, Any], rescan: dict[str, Any]) -> str:
    mib = hashing["bytes"] / 2**20
    rows = [
        ("measurement", "lanpeer", "baseline", "ratio"),
        (
            f"hash {mib:.0f} MiB cold vs plain read",
            f"{hashing['hash_s']:.2f} s ({hashing['hash_mib_s']:.0f} MiB/s),"
            f" {hashing['hash_cpu_s']:.2f} CPU s",
            f"{hashing['read_s']:.2f} s ({hashing['read_mib_s']:.0f} MiB/s),"
            f" {hashing['read_cpu_s']:.2f} CPU s",
            f"x{hashing['hash_vs_read']:.2f}",
        ),
        (
            f"warm rescan, {rescan['games']} games",
            f"{rescan['warm_rescan_s'] * 1000:.0f} ms",
            f"{rescan['bare_listing_s'] * 1000:.0f} ms (bare listing)",
            f"x{rescan['warm_rescan_s'] / rescan['bare_listing_s']:.2f}",
        ),
        (
            f"first start + hash all, {rescan['games']} games",
            f"{rescan['first_start_hash_all_s']:.2f} s",
            "-",
            "-",
        ),
        (
            f"restart (open index + scan), {rescan['games']} games",
            f"{rescan['restart_s'] * 1000:.0f} ms",
            "-",
            "-",
        ),
        (
            "rescan after touching 1 game",
            f"{rescan['touched_rescan_s'] * 1000:.0f} ms"
            f" + rehash {rescan['touched_rehash_s'] * 1000:.0f} ms"
            f" ({rescan['touched_files_hashed']} file)",
            f"{rescan['warm_rescan_s'] * 1000:.0f} ms (warm rescan)",
            f"x{rescan['touched_rescan_s'] / rescan['warm_rescan_s']:.2f}",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hash-mib", type=int, default=1024)
    parser.add_argument("--games", type=int, default=1000)
    parser.add_argument("--game-kib", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lanpeer-bench-") as tmp:
        work = Path(tmp)
        hashing = await bench_hashing(work, args.hash_mib)
        rescan = await bench_rescan(work, args.games, args.game_kib)
    print(_table(hashing, rescan))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"hashing": hashing, "rescan": rescan}, indent=2) + "\n")
    print(f"\nJSON: {OUT}")


if __name__ == "__main__":
    asyncio.run(main())
