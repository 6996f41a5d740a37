"""The web UI's live channel under load: 20 open tabs during a download vs none, same run.

Two real lanpeerd on loopback (mDNS off): a seeder with two games of the same size, and a
leecher with its web UI on a free port and a download cap, so that both downloads last the same
time. The leecher downloads one game with no tab open (the baseline), then the other with N
live-channel clients connected (aiohttp WebSockets in this process, reading every message as a
browser tab does). Prints the leecher's CPU-seconds, its CPU as % of one core over each
download, the difference (what the tabs cost) and the messages each tab got; writes
bench/out/bench_web.json. Everything shares this machine's cores: read it with `uptime`.

    uv run python bench/bench_web.py [--size MIB] [--tabs 20] [--cap 16MiB/s]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from lanpeer_proto import control as c

from lanpeer.demo import DaemonRefused, ask

MIB = 1 << 20
OUT = Path(__file__).resolve().parent / "out"


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Daemon:
    def __init__(self, home: Path, name: str, *extra: str) -> None:
        self.home = home
        self.socket = home / "control.sock"
        self.port = free_port(socket.SOCK_DGRAM)
        argv = [
            sys.executable, "-m", "lanpeer.main", "--games", str(home / "games"),
            "--state", str(home / "state"), "--socket", str(self.socket), "--bind", "127.0.0.1",
            "--port", str(self.port), "--no-mdns", "--name", name, *extra,
        ]  # fmt: skip
        (home / "games").mkdir(parents=True, exist_ok=True)
        with (home / "lanpeerd.log").open("wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=log)
        self.ps = psutil.Process(self.proc.pid)

    async def ask(self, request: Any) -> Any:
        return await ask(self.socket, request)

    async def wait_until(self, what: str, check: Any, limit: float = 120.0) -> Any:
        async with asyncio.timeout(limit):
            while True:
                with contextlib.suppress(OSError, DaemonRefused):
                    if value := await check():
                        return value
                if self.proc.poll() is not None:
                    raise RuntimeError(f"lanpeerd exited while waiting for {what}")
                await asyncio.sleep(0.05)  # poll interval, bounded by the timeout

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


async def tab(url: str, origin: str, stop: asyncio.Event, counts: list[int]) -> None:
    """One live-channel client that reads everything until ``stop``."""
    index = len(counts)
    counts.append(0)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers={"Origin": origin}, max_msg_size=64 << 20) as ws,
    ):
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                message = await ws.receive(timeout=0.5)
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"tab {index} closed: {message.type} {message.extra}")
                counts[index] += 1


async def download(leecher: Daemon, game_id: str) -> tuple[float, float]:
    """(seconds, leecher CPU-seconds) of one download, from the request to its end."""
    cpu0, t0 = leecher.cpu(), time.monotonic()
    await leecher.ask(c.DownloadRequest(game_id=game_id, install=False))

    async def finished() -> bool:
        ops = (await leecher.ask(c.OpsRequest())).ops
        return not any(op.game_id == game_id for op in ops)

    await leecher.wait_until(f"{game_id} downloaded", finished, limit=600)
    return time.monotonic() - t0, leecher.cpu() - cpu0


async def bench(size: int, tabs: int, cap: str, home: Path) -> dict[str, Any]:
    from lanpeer.library.samples import generate_game, write_catalog

    games = home / "seeder" / "games"
    for seed, game_id in enumerate(("quiet-run", "watched-run"), start=1):
        generate_game(games, game_id, size, seed=seed, archives=4)
    write_catalog(games / "catalog.toml", ["quiet-run", "watched-run"])
    web_port = free_port(socket.SOCK_STREAM)
    seeder = Daemon(home / "seeder", "seeder", "--no-web")
    leecher = Daemon(
        home / "leecher", "leecher", "--web", f"127.0.0.1:{web_port}", "--max-download", cap
    )
    try:
        await seeder.wait_until("seeder ready", lambda: seeder.ask(c.StatusRequest()))
        await leecher.wait_until("leecher ready", lambda: leecher.ask(c.StatusRequest()))
        await leecher.ask(c.AddPeerRequest(host="127.0.0.1", port=seeder.port))

        async def offered() -> bool:
            games = (await leecher.ask(c.GamesRequest())).games
            return sum(1 for g in games if g.ready_peers) == 2

        await leecher.wait_until("both games hashed and offered", offered, limit=600)
        url = (await leecher.ask(c.UiRequest())).url
        live = url.replace("http://", "ws://").replace("/?", "/api/live?")
        origin = f"http://127.0.0.1:{web_port}"

        quiet_s, quiet_cpu = await download(leecher, "quiet-run")
        stop = asyncio.Event()
        counts: list[int] = []
        async with asyncio.TaskGroup() as group:
            for _ in range(tabs):
                group.create_task(tab(live, origin, stop, counts))

            async def all_open() -> bool:
                return (await leecher.ask(c.StatusRequest())).subscribers >= tabs

            await leecher.wait_until(f"{tabs} tabs subscribed", all_open)
            watched_s, watched_cpu = await download(leecher, "watched-run")
            stop.set()
    finally:
        seeder.stop()
        leecher.stop()
    return {
        "size_mib": size // MIB,
        "cap": cap,
        "tabs": tabs,
        "no_tabs": {"seconds": quiet_s, "cpu_seconds": quiet_cpu},
        "with_tabs": {"seconds": watched_s, "cpu_seconds": watched_cpu},
        "messages_per_tab": sorted(counts),
        "load_average": os.getloadavg(),
    }


def report(result: dict[str, Any]) -> None:
    rows = [("no tab", result["no_tabs"]), (f"{result['tabs']} tabs", result["with_tabs"])]
    print(f"\n{result['size_mib']} MiB download capped at {result['cap']}, leecher daemon CPU")
    print(f"{'run':<10} {'seconds':>8} {'CPU s':>8} {'% of a core':>12}")
    for name, run in rows:
        share = 100 * run["cpu_seconds"] / run["seconds"]
        print(f"{name:<10} {run['seconds']:8.2f} {run['cpu_seconds']:8.2f} {share:11.1f}%")
    quiet, watched = result["no_tabs"], result["with_tabs"]
    extra = 100 * (
        watched["cpu_seconds"] / watched["seconds"] - quiet["cpu_seconds"] / quiet["seconds"]
    )
    print(f"{'tabs cost':<10} {'':>8} {'':>8} {extra:11.1f}%")
    counts = result["messages_per_tab"]
    print(f"messages per tab: min {counts[0]}, max {counts[-1]}")
    print("load average: {:.2f} {:.2f} {:.2f}".format(*result["load_average"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="game size in MiB")
    parser.add_argument("--tabs", type=int, default=20)
    parser.add_argument("--cap", default="16MiB/s", help="the leecher's --max-download")
    options = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lanpeer-bench-web-"))
    try:
        result = asyncio.run(bench(options.size * MIB, options.tabs, options.cap, home))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    report(result)
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_web.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
