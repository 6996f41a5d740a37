"""Bench glue for the namespace link: lanpeer pair, raw TCP sendfile pair, generated game.

Owns the measurements that need two hosts on a 1500-MTU veth link (through the lab's bridge):
one lanpeerd downloading from another (default bulk path or ``--bulk quic``), and the raw
``os.sendfile`` copy of the same files over one TCP connection. Reuses the scenario harness
(``tests/scenarios``) and the proto engineer's lab (``tests/netlab/lab.py``). Never runs
anything in the root network namespace. Not a test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psutil

from lanpeer.download.staging import FLUSH_EVERY
from lanpeer.library.samples import generate_game, write_catalog
from tests.scenarios.harness import finished_line
from tests.scenarios.world import World, _load_lab, mode

MiB = 1 << 20
SENDFILE_PORT = 47700

_SERVER = """
import json, os, resource, socket, sys, time
files = sys.argv[2:]
with socket.create_server((sys.argv[1], {port})) as srv:
    conn, _ = srv.accept()
    with conn:
        for name in files:
            with open(name, "rb") as f:
                size, off = os.fstat(f.fileno()).st_size, 0
                while off < size:
                    off += os.sendfile(conn.fileno(), f.fileno(), off, size - off)
r = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu_s": r.ru_utime + r.ru_stime}))
"""

_CLIENT = """
import json, os, resource, socket, sys, time
expected, out, flush_every = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
for _ in range(200):
    try:
        sock = socket.create_connection((sys.argv[1], {port}), timeout=5); break
    except OSError:
        time.sleep(0.01)
buf = bytearray(1 << 20)
view = memoryview(buf)
start, got, unflushed = time.monotonic(), 0, 0
with sock, open(out, "wb") as f:
    while got < expected:
        n = sock.recv_into(buf)
        if not n:
            break
        f.write(view[:n]); got += n; unflushed += n
        if flush_every and unflushed >= flush_every:  # written back like lanpeer's staging
            f.flush(); os.fdatasync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED); unflushed = 0
    if flush_every:
        f.flush(); os.fsync(f.fileno())
seconds = time.monotonic() - start
r = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"bytes": got, "seconds": seconds, "cpu_s": r.ru_utime + r.ru_stime}))
"""


def _script(template: str) -> str:
    return template.replace("{port}", str(SENDFILE_PORT))


def lab_or_reason(hosts: int) -> tuple[Any, str]:
    """(an un-started NetLab, "") or (None, why the namespace benches are skipped)."""
    name, why = mode()
    if name != "netns":
        return None, why
    lab_module = _load_lab()
    assert lab_module is not None
    return lab_module.NetLab(hosts), ""


def make_game(work: Path, game_id: str, mib: int) -> Path:
    root = work / "source"
    game_dir = generate_game(root, game_id, mib * MiB, seed=11, archives=4, cover=False)
    write_catalog(root / "catalog.toml", [game_id])
    return game_dir


def game_bytes(game_dir: Path) -> int:
    return sum(p.stat().st_size for p in game_dir.iterdir() if p.is_file())


def sendfile_copy(game_dir: Path, work: Path, to_disk: bool = True) -> dict[str, Any]:
    """Raw TCP sendfile of the game's files, host 1 -> host 2, written to disk the way the
    staging writes (back every FLUSH_EVERY bytes, fsynced at the end): the same disk work.
    Without ``to_disk`` the bytes go to /dev/null: what the link itself carries."""
    lab, why = lab_or_reason(2)
    if lab is None:
        return {"skipped": why}
    files = sorted(str(p) for p in game_dir.iterdir() if p.is_file())
    total = game_bytes(game_dir)
    with lab:
        sender, receiver = lab.hosts
        server_argv = [sys.executable, "-c", _script(_SERVER), sender.address, *files]
        client_argv = [sys.executable, "-c", _script(_CLIENT), sender.address, str(total),
                       str(work / "sendfile.out") if to_disk else "/dev/null",
                       str(FLUSH_EVERY if to_disk else 0)]  # fmt: skip
        server = lab.start(sender, server_argv, stdout=subprocess.PIPE)
        client = lab.start(receiver, client_argv, stdout=subprocess.PIPE)
        got = json.loads(client.communicate(timeout=600)[0])
        sent = json.loads(server.communicate(timeout=60)[0])
    (work / "sendfile.out").unlink(missing_ok=True)
    return {"bytes": got["bytes"], "seconds": got["seconds"],
            "cpu_s": got["cpu_s"] + sent["cpu_s"]}  # fmt: skip


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def lanpeer_copy(game_dir: Path, bulk: str = "auto") -> dict[str, Any]:
    """One lanpeerd downloads the game from another across the link (``--no-install``)."""
    with tempfile.TemporaryDirectory(prefix="lpbench") as tmp:
        world = World(Path(tmp), 2)
        try:
            if world.mode != "netns":
                return {"skipped": world.why}
            options = ["--bulk", bulk]
            seeder, leecher = world.add("s", extra=options), world.add("l", extra=options)
            seeder.games.mkdir(parents=True)
            # Hard links: the same bytes without a copy (symlinked game dirs are not served).
            shutil.copytree(game_dir, seeder.games / game_dir.name, copy_function=os.link)
            (seeder.games / "catalog.toml").write_bytes((game_dir.parent / "catalog.toml")
                                                        .read_bytes())  # fmt: skip
            world.start()
            leecher.wait_sees_game(game_dir.name, timeout=600)  # the seeder hashes first
            pids = [p.proc.pid for p in (seeder, leecher) if p.proc is not None]
            before = sum(_cpu(pid) for pid in pids)
            result = finished_line(leecher.download_waiting(game_dir.name), timeout=1800)
            cpu = sum(_cpu(pid) for pid in pids) - before
        finally:
            world.close()
    if not result.get("ok"):
        return {"failed": str(result.get("error"))}
    return {"bytes": game_bytes(game_dir), "seconds": result["seconds"], "cpu_s": cpu}
