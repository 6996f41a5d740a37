"""Issue 11, findings 2 and 3: a daemon in its own process, flooded on loopback.

Its descriptors (RLIMIT_NOFILE) and memory (VmHWM) are what is measured, so it must not
share this test's process. Floods come from real sockets, several loopback source addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lanpeer_proto.framing import HEADER_SIZE

from lanpeer.net.quic import QuicPeerConnection, QuicSettings, dial
from tests.net.conftest import poll_until, running_node, wait_for
from tests.net.hostile import drop

pytestmark = pytest.mark.process


class PeerProcess:
    def __init__(self, proc: asyncio.subprocess.Process, info: dict[str, Any]) -> None:
        self.proc = proc
        self.info = info

    @property
    def listen(self) -> tuple[str, int]:
        host, port = self.info["listen"]
        return host, port

    def memory_kib(self, field: str) -> int:
        """VmRSS (now) or VmHWM (peak) of the process, in KiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/{self.proc.pid}/status")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


@contextlib.asynccontextmanager
async def peer_process(
    tmp: Path, name: str, *, nofile: int | None = None
) -> AsyncIterator[PeerProcess]:
    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.net.peer_main", "--state", str(tmp / name / "state"),
        "--games", str(tmp / name / "games"), "--name", name, "--game", "quake",
        stdout=asyncio.subprocess.PIPE, preexec_fn=limit,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            info = json.loads(await proc.stdout.readline())
        yield PeerProcess(proc, info)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()


# 2 ---------------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_bulk_listener_survives_running_out_of_descriptors(tmp_path: Path) -> None:
    """The daemon may hold 64 descriptors; a flood of 200 TCP connections to its bulk port from
    five addresses (past the per-host cap of strangers, up to the total one) runs it out
    (EMFILE on accept). After the flood a download still takes the bulk path."""
    async with peer_process(tmp_path, "alpha", nofile=64) as alpha:
        port = alpha.info["bulk_port"]
        assert port
        flood = [socket.socket() for _ in range(200)]
        try:
            for n, sock in enumerate(flood):
                sock.setblocking(False)
                sock.bind((f"127.0.0.{2 + n % 5}", 0))
                with contextlib.suppress(BlockingIOError):
                    sock.connect(("127.0.0.1", port))
            # Out of descriptors (or, before issue 11, the listener died of it and closed).
            await poll_until(lambda: alpha.open_fds() >= 63 or _refused(port), 15.0)
        finally:
            for sock in flood:
                sock.close()
        async with running_node(tmp_path, "beta", static=[alpha.listen]) as b:
            await wait_for(b, lambda: any("quake" in p.games for p in b.peers()))
            alpha_id = alpha.info["peer_id"]
            manifest = await b.fetch_manifest(alpha_id, "quake")
            data = await b.fetch_chunk(alpha_id, "quake", manifest.manifest_hash, "quake.bin",
                                       0, 5000)  # fmt: skip
            assert data == b"quake" * 1000
            assert b._fetcher.uses_bulk(alpha_id)  # not fallen back to QUIC
            assert alpha_id not in b._fetcher._bulk_broken


def _refused(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        try:
            probe.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        except OSError:
            pass  # in the backlog or timed out: the listener is there
        return False


# 3 ---------------------------------------------------------------------------------------
SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
PER_SOURCE = 4
STREAMS = 16


@pytest.mark.asyncio
async def test_memory_before_authentication_is_bounded(tmp_path: Path) -> None:
    """16 strangers from 4 addresses each try to park 16 streams of ~1 MiB (a request frame
    that never completes) before any proof. The daemon's peak RSS grows by less than the stated
    bound: each stranger's connection window (2 MiB) plus a fixed allowance."""
    settings = QuicSettings()
    bound_kib = (len(SOURCES) * PER_SOURCE * settings.connection_window + (32 << 20)) // 1024
    async with peer_process(tmp_path, "alpha") as alpha:
        before = alpha.memory_kib("VmRSS")
        conns: list[QuicPeerConnection] = []
        try:
            for source in SOURCES:
                for _ in range(PER_SOURCE):
                    conns.append(await dial(*alpha.listen, QuicSettings(), 5.0, local_host=source))
            frame_start = (1 << 20).to_bytes(HEADER_SIZE, "big")  # a 1 MiB frame ...
            for conn in conns:
                for _ in range(STREAMS):
                    await conn.open_stream().write(frame_start + bytes((1 << 20) - 1))  # ... short
            ended = [asyncio.ensure_future(c.wait_ended()) for c in conns]
            _done, pending = await asyncio.wait(ended, timeout=settings.auth_deadline + 5)
            for task in pending:
                task.cancel()
            growth = alpha.memory_kib("VmHWM") - before
            assert growth < bound_kib, f"peak RSS grew {growth} KiB (bound {bound_kib} KiB)"
            assert not pending  # every stranger was closed
        finally:
            for conn in conns:
                drop(conn)
