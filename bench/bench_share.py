"""HTTP share on loopback: a game as one ZIP from a real lanpeerd vs a raw TCP sendfile copy.

A game of about ``--size`` MiB (a few large files and some small ones, real bytes) is served by
(a) a real ``lanpeerd --http-share`` (uvloop, its ZIP layout and os.sendfile path), and (b) a
raw listener in its own process that sends the same files, back to back, with ``os.sendfile``
down one TCP connection. The same client code reads both (recv_into a reused buffer, bytes
discarded), alternating rounds with a warm page cache. Prints MiB/s, the ratio to (b) and CPU
seconds per GiB of server and client, and writes bench/out/bench_share.json. Both processes
share this machine's cores (and whatever else runs on it): figures are for that machine.

    uv run python bench/bench_share.py [--size MIB] [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lanpeer.library.samples import write_catalog  # noqa: E402
from tests.daemon.harness import Lanpeerd  # noqa: E402

MIB, GIB = 1 << 20, 1 << 30
BUFFER = 4 * MIB

_RAW_SERVER = """
import os, socket, sys
paths = sys.argv[1:]
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    with conn:
        for path in paths:
            fd = os.open(path, os.O_RDONLY)
            size, offset = os.fstat(fd).st_size, 0
            while offset < size:
                offset += os.sendfile(conn.fileno(), fd, offset, size - offset)
            os.close(fd)
"""


def make_game(games: Path, size_mib: int) -> list[Path]:
    game = games / "bench"
    game.mkdir(parents=True)
    block = os.urandom(64 * MIB)
    files: list[Path] = []
    big = 4
    for index in range(big):
        path = game / f"data{index}.pak"
        with path.open("wb") as out:
            for _ in range(size_mib // big // 64):
                out.write(block)
        files.append(path)
    for index in range(200):  # small files: one local header each
        path = game / "small" / f"{index:03}.cfg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(block[index * 1000 : index * 1000 + 5000])
        files.append(path)
    (game / "version.ini").write_text("version=1\n")
    files.append(game / "version.ini")
    write_catalog(games / "catalog.toml", ["bench"])
    return files


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def read_all(sock: socket.socket, limit: int | None) -> int:
    buffer = bytearray(BUFFER)
    total = 0
    while limit is None or total < limit:
        got = sock.recv_into(buffer)
        if not got:
            break
        total += got
    return total


def fetch_zip(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /games/bench.zip HTTP/1.1\r\nHost: bench\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )  # fmt: skip
        return len(rest) + read_all(sock, length - len(rest))


def fetch_raw(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        return read_all(sock, None)


def measure(fetch: Any, port: int, server_pid: int) -> dict[str, float]:
    cpu_server, cpu_client, start = process_cpu(server_pid), client_cpu(), time.perf_counter()
    size = fetch(port)
    seconds = time.perf_counter() - start
    gib = size / GIB
    return {
        "bytes": size,
        "seconds": seconds,
        "mib_s": size / MIB / seconds,
        "server_cpu_per_gib": (process_cpu(server_pid) - cpu_server) / gib,
        "client_cpu_per_gib": (client_cpu() - cpu_client) / gib,
    }


def median(rows: list[dict[str, float]]) -> dict[str, Any]:
    middle = sorted(rows, key=lambda r: r["mib_s"])[len(rows) // 2]
    return {**middle, "all_mib_s": [round(r["mib_s"], 1) for r in rows]}


def wait_ready(port: int, deadline: float) -> float:
    start = time.monotonic()
    while time.monotonic() < start + deadline:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"HEAD /games/bench.zip HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            if sock.recv(64).startswith(b"HTTP/1.1 200"):
                return time.monotonic() - start
        time.sleep(0.1)  # poll interval while the daemon hashes and CRCs the game
    raise SystemExit("the share never served the game")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="game size in MiB (default 2048)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-share-") as tmp:
        home = Path(tmp)
        files = make_game(home / "games", args.size)
        daemon = Lanpeerd(home, name="bench", extra=["--http-share", "127.0.0.1:0"])
        daemon.start()
        raw = subprocess.Popen(
            [sys.executable, "-c", _RAW_SERVER, *map(str, files)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert raw.stdout is not None
            assert daemon.proc is not None
            raw_port = int(raw.stdout.readline())
            share_port = int(daemon.cli("share").doc["url"].rsplit(":", 1)[1].strip("/"))
            ready = wait_ready(share_port, 600)
            fetch_raw(raw_port)  # warm the page cache for both
            runs: dict[str, list[dict[str, float]]] = {"a_share_zip": [], "b_raw_sendfile": []}
            for _ in range(args.rounds):
                runs["b_raw_sendfile"].append(measure(fetch_raw, raw_port, raw.pid))
                runs["a_share_zip"].append(measure(fetch_zip, share_port, daemon.proc.pid))
        finally:
            raw.kill()
            raw.wait(5)
            daemon.stop()
    results = {name: median(rows) for name, rows in runs.items()}
    report(results, args, ready)


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace, ready: float) -> None:
    base = results["b_raw_sendfile"]["mib_s"]
    print(
        f"\n{args.size} MiB game on 127.0.0.1, {args.rounds} rounds (median), {os.cpu_count()} "
        f"CPUs shared by server and client, load {os.getloadavg()[0]:.2f}; first ZIP ready "
        f"{ready:.1f}s after start (hash + CRC-32, once)"
    )
    print(
        f"{'path':<18}{'MiB/s':>9}{'vs (b)':>9}{'srv CPU-s/GiB':>15}{'cli CPU-s/GiB':>15}  rounds"
    )
    for name, r in results.items():
        print(
            f"{name:<18}{r['mib_s']:>9.1f}{r['mib_s'] / base:>9.3f}"
            f"{r['server_cpu_per_gib']:>15.3f}{r['client_cpu_per_gib']:>15.3f}  {r['all_mib_s']}"
        )
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    doc = {"args": vars(args), "first_zip_ready_s": ready, **results}
    (out / "bench_share.json").write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
