"""Issue 11: during a combined flood of one daemon (bulk port, QUIC listener, control socket)
from other loopback addresses, a legitimate download from it completes with the right bytes
over the bulk path. Real lanpeerd processes, driven by peer-cli."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from lanpeer_cli.client import _connect
from lanpeer_proto.control import WatchRequest, encode_request
from lanpeer_proto.framing import HEADER_SIZE

from lanpeer.library.samples import generate_game, write_catalog
from lanpeer.net.quic import QuicPeerConnection, QuicSettings, dial
from tests.daemon.harness import Lanpeerd, ask_json
from tests.net.hostile import bulk_connect, drop

pytestmark = pytest.mark.process

MIB = 1 << 20
FLOODERS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"]


async def _poll(what: str, predicate: Any, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(predicate):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)  # poll interval of a condition in another process


async def _flood_bulk(port: int, stop: asyncio.Event) -> None:
    """Keep ~200 connections open that never answer the challenge (re-opened as dropped)."""
    held: list[socket.socket] = []
    try:
        n = 0
        while not stop.is_set():
            held = [s for s in held if s.fileno() != -1]
            while len(held) < 200:
                sock = socket.socket()
                sock.setblocking(False)
                sock.bind((FLOODERS[n % len(FLOODERS)], 0))
                n += 1
                held.append(sock)
                with contextlib.suppress(BlockingIOError):
                    sock.connect(("127.0.0.1", port))
            for sock in held[:50]:  # churn: the oldest go, new ones come
                sock.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await stop.wait()
    finally:
        for sock in held:
            sock.close()


async def _flood_quic(listen: tuple[str, int], stop: asyncio.Event) -> None:
    """Strangers from four addresses that never authenticate and push junk streams."""
    conns: list[QuicPeerConnection] = []
    try:
        n = 0
        while not stop.is_set():
            conns = [c for c in conns if not c.is_closed]
            while len(conns) < 48 and not stop.is_set():
                source = FLOODERS[n % 4]
                n += 1
                try:
                    conn = await dial(*listen, QuicSettings(), 2.0, local_host=source)
                except (TimeoutError, ConnectionError):
                    continue  # dropped over a cap: try again
                conns.append(conn)
                for _ in range(4):
                    await conn.open_stream().write((1 << 20).to_bytes(HEADER_SIZE, "big")
                                                   + bytes(300_000))  # fmt: skip
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await stop.wait()
    finally:
        for conn in conns:
            drop(conn)


def _flood_control(path: Path) -> list[socket.socket]:
    watchers = []
    for _ in range(70):
        sock = _connect(path)
        sock.sendall(encode_request(WatchRequest()))
        watchers.append(sock)
    return watchers


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "local" not in p.relative_to(root).parts
    }


@pytest.mark.asyncio
async def test_a_download_completes_over_the_bulk_path_during_a_combined_flood(
    tmp_path: Path,
) -> None:
    seeder_games = tmp_path / "seeder" / "games"
    seeder_games.mkdir(parents=True)
    generate_game(seeder_games, "space-race", 24 * MIB, seed=1)
    write_catalog(seeder_games / "catalog.toml", ["space-race"])
    seeder = Lanpeerd(tmp_path / "seeder", name="seeder").start()
    leecher = Lanpeerd(tmp_path / "leecher", name="leecher").start()
    stop = asyncio.Event()
    watchers: list[socket.socket] = []
    try:
        assert leecher.cli("add-peer", f"127.0.0.1:{seeder.port}").rc == 0

        def offered() -> bool:
            games = ask_json(leecher, cmd="games")["result"]["games"]
            return any(g["id"] == "space-race" and g["peers"] for g in games)

        await _poll("space-race offered", offered)
        probe, _nonce = await bulk_connect(seeder.port)  # the bulk port is the QUIC number
        probe.close()
        watchers = await asyncio.to_thread(_flood_control, seeder.socket)
        async with asyncio.TaskGroup() as floods:
            floods.create_task(_flood_bulk(seeder.port, stop))
            floods.create_task(_flood_quic(("127.0.0.1", seeder.port), stop))
            try:
                result = None
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    result = await asyncio.to_thread(
                        leecher.cli, "download", "space-race", "--wait", "--no-install",
                        timeout=90,
                    )  # fmt: skip
                    if not (result.rc == 1 and "hashing" in result.err):
                        break  # (retried only while the seeder is still hashing)
                    await asyncio.sleep(0.2)
            finally:
                stop.set()
        assert result is not None
        assert result.rc == 0, result.err
        assert result.lines[-1]["ok"] is True
        assert _files(leecher.games / "space-race") == _files(seeder_games / "space-race")
        assert "bulk path failed" not in leecher.log_text()  # never fell back to QUIC
        assert "before authentication" in seeder.log_text()  # the QUIC flood did arrive
    finally:
        stop.set()
        for sock in watchers:
            sock.close()
        seeder.kill()
        leecher.kill()
