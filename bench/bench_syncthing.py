"""Syncthing baseline: two Syncthing instances in two lab namespaces copy the same game folder.

Owns generating both instances' keys and configs (``syncthing generate``), pairing them by
device id on the lab addresses, and timing the copy (until the receiver's tree equals the
sender's) with the CPU-seconds of both processes. Discovery, relays, NAT, upgrades and usage
reporting are all off, and the lab has no default route, so nothing leaves the machine.
Never used by tests. Standalone: ``uv run python bench/bench_syncthing.py --size-mib 256``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import psutil

PORT = 22000
OFF = {
    "globalAnnounceEnabled": "false", "localAnnounceEnabled": "false", "relaysEnabled": "false",
    "natEnabled": "false", "urAccepted": "-1", "autoUpgradeIntervalH": "0",
    "startBrowser": "false", "crashReportingEnabled": "false",
}  # fmt: skip


def missing() -> str | None:
    if shutil.which("syncthing") is None:
        return "syncthing is not installed (apt-get install syncthing)"
    return None


def _generate(home: Path) -> str:
    subprocess.run(["syncthing", "generate", f"--home={home}", "--no-default-folder"],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    out = subprocess.run(["syncthing", f"--home={home}", "--device-id"],
                         check=True, capture_output=True, text=True, timeout=60)  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def _configure(home: Path, me: str, peer: str, peer_address: str, own_address: str,
               folder: Path, kind: str) -> None:  # fmt: skip
    path = home / "config.xml"
    tree = ET.parse(path)
    root = tree.getroot()
    for old in root.findall("folder"):
        root.remove(old)
    options = root.find("options")
    assert options is not None
    for key, value in OFF.items():
        node = options.find(key)
        if node is None:
            node = ET.SubElement(options, key)
        node.text = value
    for node in options.findall("listenAddress"):
        node.text = f"tcp://{own_address}:{PORT}"
    device = ET.SubElement(root, "device", id=peer, name="peer", compression="never")
    ET.SubElement(device, "address").text = f"tcp://{peer_address}:{PORT}"
    shared = ET.Element("folder", id="game", label="game", path=str(folder), type=kind,
                        rescanIntervalS="3600", fsWatcherEnabled="false")  # fmt: skip
    for device_id in (me, peer):
        ET.SubElement(shared, "device", id=device_id)
    root.insert(0, shared)
    tree.write(path)


def _files(folder: Path) -> dict[str, int]:
    return {
        p.relative_to(folder).as_posix(): p.stat().st_size
        for p in folder.rglob("*")
        if p.is_file()
        and not p.name.startswith(".st")
        and ".stfolder" not in p.parts
        and not p.name.startswith(".syncthing")
    }


def _cpu(pid: int) -> float:
    """CPU-seconds of a process and its live children (syncthing may fork a worker)."""
    try:
        top = psutil.Process(pid)
        procs = [top, *top.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def race(lab: Any, game_dir: Path, work: Path, timeout: float = 900.0) -> dict[str, Any]:
    """Copy ``game_dir`` from lab host 1 to host 2 with Syncthing; seconds and CPU-seconds."""
    sender_host, receiver_host = lab.hosts[0], lab.hosts[1]
    homes = [work / "st-send", work / "st-recv"]
    ids = [_generate(home) for home in homes]
    source, target = work / "st-source", work / "st-target"
    shutil.copytree(game_dir, source)
    target.mkdir()
    for folder in (source, target):
        (folder / ".stfolder").mkdir(exist_ok=True)
    addresses = [sender_host.address, receiver_host.address]
    _configure(homes[0], ids[0], ids[1], addresses[1], addresses[0], source, "sendonly")
    _configure(homes[1], ids[1], ids[0], addresses[0], addresses[1], target, "receiveonly")
    env = {**os.environ, "STNOUPGRADE": "1", "STNORESTART": "1"}
    quiet: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL,
                             "stderr": subprocess.DEVNULL, "env": env}  # fmt: skip
    expected = _files(source)
    started = time.monotonic()
    procs = [
        lab.start(
            host,
            [
                "syncthing",
                "serve",
                f"--home={home}",
                "--no-browser",
                "--no-restart",
                "--no-upgrade",
            ],
            **quiet,
        )
        for host, home in zip((sender_host, receiver_host), homes, strict=True)
    ]
    try:
        while _files(target) != expected:
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"syncthing did not finish in {timeout:.0f}s")
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a syncthing instance exited early")
            time.sleep(0.05)  # polling the receiver's folder, bounded by the timeout above
        seconds = time.monotonic() - started
        cpu = sum(_cpu(p.pid) for p in procs)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    size = sum(expected.values())
    return {
        "tool": "syncthing",
        "bytes": size,
        "seconds": seconds,
        "cpu_s": cpu,
        "note": "incl. Syncthing start-up, connect and the sender's initial scan",
    }


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.lanlab import lab_or_reason, make_game

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=256)
    args = parser.parse_args()
    reason = missing()
    lab, why = lab_or_reason(2)
    if reason or lab is None:
        print(f"skipped: {reason or why}")
        return
    with tempfile.TemporaryDirectory(prefix="lpbench") as tmp, lab:
        game = make_game(Path(tmp), "race", args.size_mib)
        print(json.dumps(race(lab, game, Path(tmp)), indent=2))


if __name__ == "__main__":
    main()
