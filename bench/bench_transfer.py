"""Chunk transfer on loopback: (a) QUIC path, (b) TCP bulk path, (c) raw TCP sendfile baseline.

One server process serves a file (default 2 GiB) through a real PeerNode plus a raw sendfile
listener; this process downloads it three ways and verifies every chunk (BLAKE3) on (a) and (b).
Prints MiB/s and CPU-seconds per GiB on both sides, ratios to (c), and writes bench/out/.
Both processes share this machine's cores: the figures are for a loaded 2-core box.

    uv run python bench/bench_transfer.py [--size MIB] [--loop asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import blake3
from lanpeer_proto import codec
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import GameSummary, LibraryDelta, Manifest, ManifestFile

from lanpeer.net.bulk import send_file_range
from lanpeer.net.identity import Identity
from lanpeer.net.node import PeerNode

T = TypeVar("T")
CHUNK = 4 << 20
GAME = "bench"
FILE = "data.bin"
GIB = 1 << 30


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class OneFileLibrary:
    """A LibraryView serving one file as game ``bench``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.library_rev = 1
        self.library_digest = bytes(32)
        data_path = root / GAME / FILE
        hashes = []
        with open(data_path, "rb") as f:
            while piece := f.read(CHUNK):
                hashes.append(blake3.blake3(piece, max_threads=blake3.blake3.AUTO).digest())
        size = data_path.stat().st_size
        body = Manifest(
            game_id=GAME,
            version="1",
            manifest_hash=bytes(32),
            files=[ManifestFile(path=FILE, size=size, chunk_size=CHUNK, chunk_hashes=hashes)],
        )
        self.manifest = body.model_copy(
            update={"manifest_hash": blake3.blake3(codec.encode(body)).digest()}
        )
        self.summary = GameSummary(
            id=GAME, name="Bench", version="1", size=size, manifest_hash=self.manifest.manifest_hash
        )

    def snapshot(self) -> list[GameSummary]:
        return [self.summary]

    def delta_since(self, rev: int) -> LibraryDelta | None:
        return None

    def add_listener(self, cb: Callable[[int], None]) -> None:
        pass

    async def wait_manifest(self, game_id: str) -> Manifest:
        return self.manifest

    def open_served_file(self, game_id: str, manifest_hash: bytes, path: str) -> int:
        if (game_id, manifest_hash, path) != (GAME, self.manifest.manifest_hash, FILE):
            raise LookupError(ErrorCode.NOT_FOUND)
        return os.open(self.root / GAME / FILE, os.O_RDONLY | os.O_NOFOLLOW)


# server process ------------------------------------------------------------------------------
async def serve(root: Path, state: Path) -> None:
    library = OneFileLibrary(root)
    raw = socket.create_server(("127.0.0.1", 0))
    raw.setblocking(False)
    loop = asyncio.get_running_loop()
    node = PeerNode(
        Identity.load_or_create(state), library, name="server", bind="127.0.0.1", port=0, mdns=False
    )
    async with node:
        print(json.dumps({"quic": node.listen[1], "raw": raw.getsockname()[1]}), flush=True)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(_rawsend_file_range(raw, root / GAME / FILE))
            while line := await reader.readline():
                if line.strip() == b"cpu":
                    print(json.dumps({"cpu": cpu()}), flush=True)
            raise asyncio.CancelledError
    raw.close()


async def _rawsend_file_range(listener: socket.socket, path: Path) -> None:
    """Baseline (c): the whole file down one TCP connection with os.sendfile."""
    loop = asyncio.get_running_loop()
    fd = os.open(path, os.O_RDONLY)
    try:
        while True:
            conn, _ = await loop.sock_accept(listener)
            with conn:
                await send_file_range(conn, fd, 0, os.fstat(fd).st_size)
    finally:
        os.close(fd)


# downloader (this process) -------------------------------------------------------------------
class Server:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        assert proc.stdout is not None
        assert proc.stdin is not None
        self.ports = json.loads(proc.stdout.readline())

    def cpu(self) -> float:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("cpu\n")
        self.proc.stdin.flush()
        value: float = json.loads(self.proc.stdout.readline())["cpu"]
        return value


def _digest(data: bytes) -> bytes:
    digest: bytes = blake3.blake3(data).digest()
    return digest


async def fetch_all(node: PeerNode, peer_id: str, manifest: Manifest, lanes: int) -> int:
    (file,) = manifest.files
    offsets = list(range(0, file.size, file.chunk_size))
    queue = iter(enumerate(offsets))
    total = 0

    async def lane() -> None:
        nonlocal total
        for index, offset in queue:
            length = min(file.chunk_size, file.size - offset)
            data = await node.fetch_chunk(
                peer_id, GAME, manifest.manifest_hash, FILE, offset, length
            )
            digest = await asyncio.to_thread(_digest, data)
            if digest != file.chunk_hashes[index]:
                raise AssertionError(f"chunk {index} failed verification")
            total += len(data)

    async with asyncio.TaskGroup() as tasks:
        for _ in range(lanes):
            tasks.create_task(lane())
    return total


async def run_node_mode(server: Server, tmp: Path, bulk: str, lanes: int) -> dict[str, float]:
    node = PeerNode(
        Identity.load_or_create(tmp / f"client-{bulk}"),
        _EmptyLibrary(),
        name=f"client-{bulk}",
        bind="127.0.0.1",
        port=0,
        mdns=False,
        bulk=bulk,  # type: ignore[arg-type]
        static_peers=[("127.0.0.1", server.ports["quic"])],
    )
    async with node:
        async with asyncio.timeout(30):
            while not any(GAME in p.games for p in node.peers()):
                await node.wait_sources_changed(0.5)
        (peer,) = node.peers()
        manifest = await node.fetch_manifest(peer.peer_id, GAME)
        return await _measure(server, fetch_all(node, peer.peer_id, manifest, lanes))


async def run_raw(server: Server) -> dict[str, float]:
    async def copy() -> int:
        loop = asyncio.get_running_loop()
        with socket.create_connection(("127.0.0.1", server.ports["raw"])) as sock:
            sock.setblocking(False)
            buffer = memoryview(bytearray(CHUNK))
            total = 0
            while n := await loop.sock_recv_into(sock, buffer):
                total += n
            return total

    return await _measure(server, copy())


async def _measure(server: Server, work: object) -> dict[str, float]:
    s0, c0, t0 = server.cpu(), cpu(), time.perf_counter()
    moved: int = await work  # type: ignore[misc]
    elapsed, c1, s1 = time.perf_counter() - t0, cpu(), server.cpu()
    gib = moved / GIB
    return {
        "bytes": moved,
        "seconds": elapsed,
        "mib_s": moved / (1 << 20) / elapsed,
        "server_cpu_per_gib": (s1 - s0) / gib,
        "client_cpu_per_gib": (c1 - c0) / gib,
    }


class _EmptyLibrary(OneFileLibrary):
    def __init__(self) -> None:
        self.library_rev = 0
        self.library_digest = bytes(32)

    def snapshot(self) -> list[GameSummary]:
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="file size in MiB")
    parser.add_argument("--lanes", type=int, default=4, help="concurrent chunk requests")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (b) and (c)")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _run(args.loop, serve(Path(args.serve[0]), Path(args.serve[1])))
        return
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp_name:
        tmp = Path(tmp_name)
        _write_file(tmp / "root" / GAME / FILE, args.size << 20)
        proc = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--loop",
                args.loop,
                "--serve",
                str(tmp / "root"),
                str(tmp / "server"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            results = _run(args.loop, _run_all(Server(proc), tmp, args.lanes, args.rounds))
        finally:
            proc.terminate()
            proc.wait(10)
    _report(results, args)


async def _run_all(
    server: Server, tmp: Path, lanes: int, rounds: int
) -> dict[str, dict[str, float]]:
    """(b) and (c) alternate for ``rounds`` rounds (the box is shared: medians), (a) runs once."""
    runs: dict[str, list[dict[str, float]]] = {"c_raw_sendfile": [], "b_bulk": []}
    for _ in range(rounds):
        runs["c_raw_sendfile"].append(await run_raw(server))
        runs["b_bulk"].append(await run_node_mode(server, tmp, "auto", lanes))
    results = {name: _median(rows) for name, rows in runs.items()}
    results["a_quic"] = await run_node_mode(server, tmp, "quic", lanes)
    return results


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    middle = sorted(rows, key=lambda r: r["mib_s"])[len(rows) // 2]
    return {**middle, "all_mib_s": [round(r["mib_s"], 1) for r in rows]}  # type: ignore[dict-item]


def _write_file(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True)
    piece = os.urandom(16 << 20)
    with open(path, "wb") as f:
        for offset in range(0, size, len(piece)):
            f.write(piece[: size - offset])


def _run(loop: str, coro: Coroutine[Any, Any, T]) -> T:
    if loop == "uvloop":
        import uvloop

        result: T = uvloop.run(coro)
        return result
    return asyncio.run(coro)


def _report(results: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    base = results["c_raw_sendfile"]["mib_s"]
    print(
        f"\n{args.size} MiB on 127.0.0.1, {args.loop}, {args.lanes} lanes, {os.cpu_count()} CPUs "
        "shared by both processes (and anything else running)"
    )
    print(
        f"{'path':<16}{'MiB/s':>10}{'vs (c)':>9}{'srv CPU-s/GiB':>15}{'cli CPU-s/GiB':>15}"
        "  rounds (MiB/s)"
    )
    for name in ("a_quic", "b_bulk", "c_raw_sendfile"):
        r = results[name]
        print(
            f"{name:<16}{r['mib_s']:>10.1f}{r['mib_s'] / base:>9.3f}"
            f"{r['server_cpu_per_gib']:>15.2f}{r['client_cpu_per_gib']:>15.2f}"
            f"  {r.get('all_mib_s', '')}"
        )
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "bench_transfer.json").write_text(json.dumps({"args": vars(args), **results}, indent=2))


if __name__ == "__main__":
    main()
