"""Two peers in separate network namespaces on a bridge find each other over real mDNS and sync.

The lab (a switch namespace with a bridge, one namespace per host, 10.213.0.0/24, no default
route) is built per test with a pid-based prefix, torn down before setup and in ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NET = "10.213.0"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=10)


def _lab_missing() -> str | None:
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if _ip("netns", "list", check=False).returncode != 0:
        return "`ip netns` does not work here"
    return None


def _down(prefix: str) -> None:
    names = [line.split()[0] for line in _ip("netns", "list", check=False).stdout.splitlines()]
    for ns in names:
        if ns == f"{prefix}-sw" or ns.startswith(f"{prefix}-h"):
            for pid in _ip("netns", "pids", ns, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), 9)  # only processes inside our own namespaces
            _ip("netns", "del", ns, check=False)


def _up(prefix: str, hosts: int) -> list[str]:
    _down(prefix)
    sw = f"{prefix}-sw"
    _ip("netns", "add", sw)
    _ip("-n", sw, "link", "set", "lo", "up")
    _ip("-n", sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
    _ip("-n", sw, "link", "set", "br0", "up")
    names = []
    for i in range(1, hosts + 1):
        host = f"{prefix}-h{i}"
        _ip("netns", "add", host)
        _ip("-n", sw, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", host)
        _ip("-n", sw, "link", "set", f"v{i}", "master", "br0", "up")
        _ip("-n", host, "link", "set", "lo", "up")
        _ip("-n", host, "link", "set", "eth0", "up")
        _ip("-n", host, "addr", "add", f"{NET}.{10 + i}/24", "dev", "eth0")
        _ip("-n", host, "route", "add", "224.0.0.0/4", "dev", "eth0")
        names.append(host)
    return names


@pytest.fixture
def lab() -> Iterator[list[str]]:
    missing = _lab_missing()
    if missing is not None:
        print(f"skipping the netns lab: {missing}")
        pytest.skip(missing)
    prefix = f"lpnet{os.getpid()}"
    try:
        yield _up(prefix, 2)
    finally:
        _down(prefix)


async def _peer(tmp: Path, ns: str, index: int, game: str) -> asyncio.subprocess.Process:
    name = f"peer{index}"
    return await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, "-m", "tests.net.peer_main",
        "--state", str(tmp / name / "state"), "--games", str(tmp / name / "games"),
        "--name", "lanparty",  # same display name on both: unique names come from the peer_id
        "--bind", f"{NET}.{10 + index}", "--port", "47600", "--mdns", "--game", game,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _wait_sees(proc: asyncio.subprocess.Process, game: str) -> dict[str, object]:
    assert proc.stdout is not None
    while True:
        line = await proc.stdout.readline()
        if not line:
            raise AssertionError(f"peer exited (rc={await proc.wait()}) before seeing {game}")
        report = json.loads(line)
        if game in report.get("games", []):
            return report


@pytest.mark.netns
@pytest.mark.asyncio
async def test_two_namespaces_discover_over_mdns_and_sync(
    lab: list[str], tmp_path: Path
) -> None:
    procs = [await _peer(tmp_path, lab[0], 1, "quake"), await _peer(tmp_path, lab[1], 2, "doom")]
    try:
        async with asyncio.timeout(30):
            seen_by_1, seen_by_2 = await asyncio.gather(
                _wait_sees(procs[0], "doom"), _wait_sees(procs[1], "quake")
            )
        assert seen_by_1["peer_id"] != seen_by_2["peer_id"]
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()
