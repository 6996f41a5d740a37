"""Whole-game downloads on loopback from 1, 2 and 4 peers vs a raw TCP sendfile copy, same run.

Seeders are child processes (GameLibrary + PeerNode over a hard-linked copy of one game); the
downloader (GameLibrary + PeerNode + DownloadManager) runs here and writes, verifies and commits
the game like the daemon. The baseline copies the same file once over TCP with os.sendfile into
a file on the same disk and fsyncs it (a download is durable before it counts, so is the copy),
once plainly and once written back every 64 MiB like the staging does; the faster one counts.
Prints MiB/s, the ratio to raw and CPU-seconds per GiB on both sides; writes
bench/out/bench_download.json. Everything shares this machine's cores.

    uv run python bench/bench_download.py [--size MIB] [--peers 1,2,4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from lanpeer.download.staging import FLUSH_EVERY

GAME = "bench-game"
MIB = 1 << 20
GIB = 1 << 30
OUT = Path(__file__).resolve().parent / "out"


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


# -- children -----------------------------------------------------------------------------------


async def run_seeder(home: Path) -> None:
    from lanpeer.library import GameLibrary
    from lanpeer.library.samples import write_catalog
    from lanpeer.net.identity import Identity
    from lanpeer.net.node import PeerNode

    write_catalog(home / "games" / "catalog.toml", [GAME])
    lib = GameLibrary([home / "games"], home / "library", watch=False)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with lib:
        await lib.wait_manifest(GAME)
        node = PeerNode(Identity.load_or_create(home / "identity"), lib, name=home.name,
                        bind="127.0.0.1", port=0, mdns=False)  # fmt: skip
        async with node:
            print(json.dumps({"listen": list(node.listen)}), flush=True)
            await stop.wait()


def run_raw_server(path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        print(json.dumps({"port": srv.getsockname()[1]}), flush=True)
        conn, _ = srv.accept()
        with conn, open(path, "rb") as f:
            size, offset = os.fstat(f.fileno()).st_size, 0
            while offset < size:
                offset += os.sendfile(conn.fileno(), f.fileno(), offset, size - offset)


# -- the parent ---------------------------------------------------------------------------------


def make_game(work: Path, size: int, seeders: int) -> Path:
    src = work / "seed0" / "games" / GAME
    src.mkdir(parents=True)
    with open(src / "data.eti", "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 64 * MIB))
            f.write(block)
            left -= len(block)
    (src / "version.ini").write_text("[game]\nversion=1.0\n")
    for i in range(1, seeders):
        dst = work / f"seed{i}" / "games" / GAME
        dst.mkdir(parents=True)
        os.link(src / "data.eti", dst / "data.eti")  # same bytes, no extra disk
        shutil.copy(src / "version.ini", dst / "version.ini")
    return src / "data.eti"


def spawn(*args: str) -> tuple[subprocess.Popen[str], dict[str, object]]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"child {args} exited with {proc.wait()}")
    return proc, json.loads(line)


async def lanpeer_download(work: Path, seeds: list[tuple[subprocess.Popen[str], tuple[str, int]]],
                           size: int) -> dict[str, float]:  # fmt: skip
    from lanpeer.download import DownloadManager
    from lanpeer.download.resolve import newest_offer
    from lanpeer.library import GameLibrary
    from lanpeer.net.identity import Identity
    from lanpeer.net.node import PeerNode

    home = work / f"leecher{len(seeds)}"
    (home / "games").mkdir(parents=True)
    lib = GameLibrary([home / "games"], home / "library", watch=False, background_hashing=False)
    node = PeerNode(Identity.load_or_create(home / "identity"), lib, name="leecher",
                    bind="127.0.0.1", port=0, mdns=False,
                    static_peers=[addr for _, addr in seeds])  # fmt: skip
    async with lib, node, DownloadManager(lib, node, offers=node) as mgr:
        async with asyncio.timeout(120):
            while True:
                offer = newest_offer(node.peers(), GAME)
                if offer and len(node.sources_for(GAME, offer[1].manifest_hash or b"")) == len(
                    seeds
                ):
                    break
                await node.wait_sources_changed(0.5)
        manifest = await node.fetch_manifest(offer[0], GAME)
        me, others = psutil.Process(), [psutil.Process(p.pid) for p, _ in seeds]
        cpu0, seed0, t0 = cpu_seconds(me), sum(map(cpu_seconds, others)), time.monotonic()
        op = mgr.submit_download(GAME, manifest)
        await op.wait_finished()
        wall = time.monotonic() - t0
        cpu, seed_cpu = cpu_seconds(me) - cpu0, sum(map(cpu_seconds, others)) - seed0
        if not op.ok:
            raise RuntimeError(f"download failed: {op.error}")
        by_peer = op.counters.chunks_by_peer
    shutil.rmtree(home)
    return {"seconds": wall, "mib_s": size / MIB / wall, "cpu_down": cpu / (size / GIB),
            "cpu_up": seed_cpu / (size / GIB), "peers_used": len(by_peer)}  # fmt: skip


def raw_copy(work: Path, data: Path, size: int, flush_every: int = 0) -> dict[str, float]:
    """The same bytes over one TCP connection into one file, fsynced at the end; with
    ``flush_every``, written back and dropped from the cache as often as the staging does."""
    proc, hello = spawn("--role", "raw", "--file", str(data))
    me, server = psutil.Process(), psutil.Process(proc.pid)
    cpu0, srv0, t0 = cpu_seconds(me), cpu_seconds(server), time.monotonic()
    buf = bytearray(4 * MIB)
    view = memoryview(buf)
    with socket.create_connection(("127.0.0.1", int(hello["port"]))) as s, \
            open(work / "raw.copy", "wb") as out:  # fmt: skip
        got = unflushed = 0
        while got < size:
            n = s.recv_into(buf)
            if not n:
                break
            out.write(view[:n])
            got += n
            unflushed += n
            if flush_every and unflushed >= flush_every:
                out.flush()
                os.fdatasync(out.fileno())
                os.posix_fadvise(out.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                unflushed = 0
        out.flush()
        os.fsync(out.fileno())  # durable, like a committed download (which fsyncs before commit)
    wall = time.monotonic() - t0
    cpu, srv = cpu_seconds(me) - cpu0, cpu_seconds(server) - srv0
    proc.wait()
    os.unlink(work / "raw.copy")
    return {"seconds": wall, "mib_s": size / MIB / wall, "cpu_down": cpu / (size / GIB),
            "cpu_up": srv / (size / GIB)}  # fmt: skip


async def bench(args: argparse.Namespace) -> None:
    size = args.size * MIB
    peer_counts = [int(p) for p in args.peers.split(",")]
    with tempfile.TemporaryDirectory(prefix="lanpeer-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        data = make_game(work, size, max(peer_counts))
        seeds = []
        try:
            for i in range(max(peer_counts)):
                proc, hello = spawn("--role", "seeder", "--home", str(work / f"seed{i}"))
                seeds.append((proc, tuple(hello["listen"])))  # type: ignore[arg-type]
            # Raw before and after the lanpeer runs (the best counts): a shared box is noisy.
            os.sync()
            raws = [raw_copy(work, data, size), raw_copy(work, data, size, FLUSH_EVERY)]
            rows: dict[str, dict[str, float]] = {}
            for n in peer_counts:
                os.sync()  # start each run without the previous run's dirty pages
                rows[f"lanpeer {n} peer(s)"] = await lanpeer_download(work, seeds[:n], size)  # type: ignore[arg-type]
            os.sync()
            raws += [raw_copy(work, data, size), raw_copy(work, data, size, FLUSH_EVERY)]
            # The baseline is the best raw copy, whichever way of writing it won on this disk.
            rows = {"raw sendfile": max(raws, key=lambda r: r["mib_s"]), **rows}
        finally:
            for proc, _ in seeds:
                proc.send_signal(signal.SIGTERM)
            for proc, _ in seeds:
                proc.wait(timeout=30)
    report(rows, args.size)


def report(rows: dict[str, dict[str, float]], size_mib: int) -> None:
    raw = rows["raw sendfile"]["mib_s"]
    print(f"\nwhole-game download, {size_mib} MiB, loopback, {os.cpu_count()} cores shared")
    print(f"{'transfer':<20} {'MiB/s':>8} {'x raw':>7} {'CPU-s/GiB down':>15} {'CPU-s/GiB up':>13}")
    for name, r in rows.items():
        print(f"{name:<20} {r['mib_s']:>8.1f} {r['mib_s'] / raw:>7.2f} {r['cpu_down']:>15.2f} "
              f"{r['cpu_up']:>13.2f}")  # fmt: skip
    OUT.mkdir(exist_ok=True)
    doc = {"size_mib": size_mib, "cores": os.cpu_count(), "rows": rows}
    (OUT / "bench_download.json").write_text(json.dumps(doc, indent=2))
    print(f"\nwrote {OUT / 'bench_download.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="game size in MiB (default 2048)")
    parser.add_argument("--peers", default="1,2,4", help="peer counts to run (default 1,2,4)")
    parser.add_argument("--workdir", default=None, help="where to put the games (default: tmp)")
    parser.add_argument("--role", choices=["seeder", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "seeder":
        asyncio.run(run_seeder(Path(args.home)))
    elif args.role == "raw":
        run_raw_server(Path(args.file))
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
