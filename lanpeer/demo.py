"""``lanpeerd demo``: three real daemons on loopback; a game found, fetched from two, installed.

Owns the newcomer's first run (SPEC §10): fresh temp dirs, two seeders and a player started as
real ``lanpeerd`` processes with static peers on 127.0.0.1, a generated game with real archives,
a progress bar, a summary line, and cleanup of every process and file. Never fakes a step: if a
part fails, the demo says which and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanpeer_proto import control as c
from lanpeer_proto import units
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from lanpeer.library.samples import generate_game, write_catalog

GAME = "starfall-arena"
GAME_SIZE = 96 << 20  # big enough to see both seeders work, small enough for ~10 s on a laptop
DEADLINE = 25.0  # the whole demo must finish well under 30 s
MIB = 1 << 20
console = Console()
_t0 = time.monotonic()


def say(text: str) -> None:
    console.print(f"[dim]{time.monotonic() - _t0:5.1f}s[/] {text}")


@dataclass
class DemoPeer:
    name: str
    home: Path
    port: int
    proc: asyncio.subprocess.Process | None = None

    @property
    def socket(self) -> Path:
        return self.home / "control.sock"

    async def start(self, peers: list[DemoPeer]) -> None:
        argv = [
            sys.executable, "-m", "lanpeer.main", "--games", str(self.home / "games"),
            "--state", str(self.home / "state"), "--socket", str(self.socket),
            "--bind", "127.0.0.1", "--port", str(self.port), "--no-mdns", "--name", self.name,
            "--no-web",  # the demo's peers are throwaway; the person's own lanpeerd keeps 47680
        ]  # fmt: skip
        for peer in peers:
            argv += ["--peer", f"127.0.0.1:{peer.port}"]
        log = (self.home / "lanpeerd.log").open("wb")
        self.proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                         stdout=log, stderr=log)  # fmt: skip
        log.close()

    async def ask(self, request: Any) -> Any:
        try:
            return await ask(self.socket, request)
        except DaemonRefused as exc:
            raise DemoFailed(f"{self.name}: {exc}") from None

    async def wait_ready(self) -> None:
        while True:
            try:
                await self.ask(c.StatusRequest())
                return
            except (OSError, DemoFailed):
                if self.proc is not None and self.proc.returncode is not None:
                    raise DemoFailed(f"{self.name} exited: {self.log_tail()}") from None
                await asyncio.sleep(0.05)  # readiness poll, bounded by the demo deadline

    def log_tail(self) -> str:
        path = self.home / "lanpeerd.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-8:]) if path.exists() else ""
        )

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        try:
            await self.ask(c.ShutdownRequest())
            async with asyncio.timeout(10):
                await self.proc.wait()
        except (OSError, DemoFailed, TimeoutError):
            self.proc.kill()
            await self.proc.wait()


class DemoFailed(Exception):
    """A step of the demo did not happen; the message says which."""


class DaemonRefused(Exception):
    """lanpeerd answered a control request with an error; the message is the daemon's."""


async def ask(socket: Path, request: Any) -> Any:
    """One request on a lanpeerd control socket (a connection of its own): the result.

    Also the benches' way to drive their daemons (``bench/bench_web.py``)."""
    reader, writer = await asyncio.open_unix_connection(str(socket), limit=c.MAX_SERVER_LINE)
    try:
        writer.write(c.encode_request(request))
        answer = c.decode_server_message(await reader.readline())
    finally:
        writer.close()
    if isinstance(answer, c.ErrorMessage):
        raise DaemonRefused(answer.message)
    assert isinstance(answer, c.ResultMessage)
    return answer.result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="lanpeerd demo",
        description="Three lanpeerd on this machine (127.0.0.1): a generated game is found, "
        "downloaded from two seeders, verified and installed; then everything is removed.",
    )
    parser.add_argument("--size", type=int, default=GAME_SIZE // MIB, help="game size in MiB")
    size = parser.parse_args(argv).size * MIB
    with tempfile.TemporaryDirectory(prefix="lanpeer-demo-") as tmp:
        try:
            asyncio.run(run_demo(Path(tmp), size))
        except DemoFailed as exc:
            console.print(f"[red]demo failed:[/] {exc}")
            return 1
        except TimeoutError:
            console.print(f"[red]demo failed:[/] it did not finish within {DEADLINE:.0f} s")
            return 1
    say("cleaned up: all daemons stopped, temp dirs removed")
    return 0


async def run_demo(tmp: Path, size: int) -> None:
    seeders = [DemoPeer(f"seeder-{n}", tmp / f"seeder-{n}", free_port()) for n in (1, 2)]
    player = DemoPeer("player", tmp / "player", free_port())
    say(f"[bold]lanpeer demo[/]: 3 daemons on 127.0.0.1 in {tmp}")
    _make_game(seeders, size)
    try:
        async with asyncio.timeout(DEADLINE):
            for seeder in seeders:
                await seeder.start([])
            await asyncio.gather(*(seeder.wait_ready() for seeder in seeders))
            await player.start(seeders)  # seeders listen already: the first dial succeeds
            await player.wait_ready()
            say("started seeder-1, seeder-2 and player (static peers, mDNS off)")
            names = await _wait_discovered(player, len(seeders))
            finished, timing = await _download(player)
            await _check_installed(player)
        _summary(finished, timing, names)
    except (DemoFailed, TimeoutError):
        for peer in [*seeders, player]:
            console.print(f"[dim]--- {peer.name} log:\n{peer.log_tail()}[/]")
        raise
    finally:
        await asyncio.gather(*(peer.stop() for peer in [*seeders, player]))


def _make_game(seeders: list[DemoPeer], size: int) -> None:
    first = seeders[0].home / "games"
    generate_game(first, GAME, size, seed=7, archives=3)
    write_catalog(first / "catalog.toml", [GAME])
    for seeder in seeders[1:]:
        shutil.copytree(first, seeder.home / "games")
    (seeders[0].home / "../player/games").resolve().mkdir(parents=True)
    say(f"generated {GAME}: {units.size(size)} in 3 real archives, on both seeders")


async def _wait_discovered(player: DemoPeer, count: int) -> dict[str, str]:
    """Until the player sees ``count`` peers offering the hashed game; peer_id -> name."""
    with console.status("discovering peers and waiting for them to hash the game..."):
        while True:
            games = {g.id: g for g in (await player.ask(c.GamesRequest())).games}
            if GAME in games and len(games[GAME].ready_peers) >= count:
                break
            await asyncio.sleep(0.1)  # discovery poll, bounded by the demo deadline
    peers = (await player.ask(c.PeersRequest())).peers
    names = {p.peer_id: p.name for p in peers}
    found = ", ".join(f"{p.name} ({p.peer_id[:8]}) at {p.address}" for p in peers)
    say(f"player discovered {found}")
    return names


@dataclass
class Timing:
    """When the download phase started and ended (the install that follows is timed apart)."""

    started: float = 0.0
    downloaded: float | None = None
    finished: float = 0.0

    @property
    def download_seconds(self) -> float:
        return (self.downloaded or self.finished) - self.started

    @property
    def install_seconds(self) -> float:
        return self.finished - self.downloaded if self.downloaded is not None else 0.0


async def _download(player: DemoPeer) -> tuple[c.FinishedEvent, Timing]:
    reader, writer = await asyncio.open_unix_connection(str(player.socket), limit=c.MAX_SERVER_LINE)
    try:
        writer.write(c.encode_request(c.DownloadRequest(game_id=GAME, install=True, wait=True)))
        answer = c.decode_server_message(await reader.readline())
        if isinstance(answer, c.ErrorMessage):
            raise DemoFailed(f"download refused: {answer.message}")
        timing = Timing(started=time.monotonic())
        finished = await _follow(reader, timing)
        timing.finished = time.monotonic()
        return finished, timing
    finally:
        writer.close()


# Past these states the bytes are all here: what follows is commit and extraction.
_AFTER_DOWNLOAD = frozenset({"committing", "installing", "updating"})


async def _follow(reader: asyncio.StreamReader, timing: Timing) -> c.FinishedEvent:
    columns = (
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=False),
        TransferSpeedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[state]}"),
    )  # fmt: skip
    with Progress(*columns, console=console) as bars:
        task = bars.add_task(f"{GAME} from 2 seeders", total=None, state="queued")
        while line := await reader.readline():
            message = c.decode_server_message(line)
            if not isinstance(message, c.EventMessage):
                continue
            event = message.event
            if isinstance(event, c.ProgressEvent):
                if timing.downloaded is None and event.state in _AFTER_DOWNLOAD:
                    timing.downloaded = time.monotonic()
                bars.update(task, completed=event.bytes_done, total=event.bytes_total or None,
                            state=event.state)  # fmt: skip
            elif isinstance(event, c.FinishedEvent):
                # The last progress line may be the install's first (0 bytes extracted): the bar
                # ends on what was downloaded, not frozen there.
                done = event.bytes if event.ok else None
                state = "done" if event.ok else "failed"
                bars.update(task, completed=done, total=done, state=state)
                if not event.ok:
                    raise DemoFailed(f"download failed: {event.error}")
                return event
    raise DemoFailed("the player daemon closed the stream before the download finished")


async def _check_installed(player: DemoPeer) -> None:
    games = {g.id: g for g in (await player.ask(c.GamesRequest())).games}
    game = games.get(GAME)
    if game is None or not (game.downloaded and game.installed):
        raise DemoFailed(f"{GAME} is not shown as downloaded and installed on the player")
    local = player.home / "games" / GAME / "local"
    files = sum(1 for p in local.rglob("*") if p.is_file())
    say(f"verified every chunk (BLAKE3) and installed {files} files into {local}")


def _summary(event: c.FinishedEvent, timing: Timing, names: dict[str, str]) -> None:
    """The download's speed over the download alone: once the install time was counted in."""
    used = [names.get(peer_id, peer_id[:8]) for peer_id in event.peers_used]
    seconds = timing.download_seconds
    rate = event.bytes / seconds if seconds > 0 else 0.0
    say(
        f"[bold green]summary:[/] {event.bytes:,} bytes ({units.size(event.bytes)}) downloaded in "
        f"{seconds:.2f} s = {units.rate(rate)}, installed in {timing.install_seconds:.2f} s, "
        f"peers used: {len(used)} ({', '.join(used)})"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
