"""Two peers in separate network namespaces on a bridge find each other over real mDNS and sync.

The lab is tests/netlab's ``NetLab`` (a switch namespace with a bridge, one namespace per host,
10.213.0.0/24, no default route, a pid-based prefix, torn down before setup and on exit).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.netlab.lab import Host, NetLab, unavailable_reason

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def lab() -> Iterator[list[Host]]:
    missing = unavailable_reason()
    if missing is not None:
        print(f"skipping the netns lab: {missing}")
        pytest.skip(missing)
    with NetLab(2) as net:  # tears down before setup and on exit
        yield net.hosts


async def _peer(tmp: Path, host: Host, game: str, late: str) -> asyncio.subprocess.Process:
    name = f"peer{host.index}"
    argv = ["ip", "netns", "exec", host.namespace, sys.executable, "-m", "tests.net.peer_main",
            "--state", str(tmp / name / "state"), "--games", str(tmp / name / "games"),
            # the same display name on both: unique mDNS names come from the peer_id
            "--name", "lanparty", "--bind", host.address, "--port", "47600", "--mdns",
            "--game", game, "--late-game", late]  # fmt: skip
    return await asyncio.create_subprocess_exec(*argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE)


async def _listening(proc: asyncio.subprocess.Process) -> dict[str, object]:
    assert proc.stdout is not None
    first: dict[str, object] = json.loads(await proc.stdout.readline())
    return first


async def _wait_sees(proc: asyncio.subprocess.Process, game: str) -> dict[str, object]:
    assert proc.stdout is not None
    while True:
        line = await proc.stdout.readline()
        if not line:
            raise AssertionError(f"peer exited (rc={await proc.wait()}) before seeing {game}")
        report: dict[str, object] = json.loads(line)
        if game in report.get("games", []):  # type: ignore[operator]
            return report


@pytest.mark.netns
@pytest.mark.asyncio
async def test_two_namespaces_discover_over_mdns_and_sync(lab: list[Host], tmp_path: Path) -> None:
    procs = [
        await _peer(tmp_path, lab[0], "quake", "quake2"),
        await _peer(tmp_path, lab[1], "doom", "doom2"),
    ]
    try:
        async with asyncio.timeout(30):
            first = [await _listening(p) for p in procs]
            assert [f["datagram"] for f in first] == [1452, 1452]  # MTU 1500 veths: no fragments
            seen_by_1, seen_by_2 = await asyncio.gather(
                _wait_sees(procs[0], "doom2"), _wait_sees(procs[1], "quake2")
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
