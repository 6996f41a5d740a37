"""One real ``lanpeerd`` process per scenario host, driven only through ``peer-cli --json``.

Owns starting, signalling and restarting a host's daemon, the ``peer-cli`` subprocesses, the
``watch --json`` event stream and the bounded waits. Never sleeps a fixed time to "let things
settle": every wait polls a condition (woken early by daemon events) up to a deadline. Never
signals a process it did not start.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

BIN = Path(sys.executable).parent
PEER_CLI = str(BIN / "peer-cli")
#: A daemon on a loaded 2-core box needs a few seconds to import and bind; 30 s is failure.
READY_TIMEOUT = 30.0
#: peer-cli itself costs ~0.5-1 s of CPU (typer, rich, pydantic imports) on a busy machine.
CLI_TIMEOUT = 30.0
T = TypeVar("T")


class ScenarioTimeout(AssertionError):
    """A condition did not hold before its deadline; the message says which."""


@dataclass
class Cli:
    """One finished peer-cli run."""

    argv: list[str]
    rc: int
    out: str
    err: str
    seconds: float

    @property
    def doc(self) -> Any:
        try:
            return json.loads(self.out)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{self.argv} printed no JSON: {self.out!r} {self.err!r}") from exc

    @property
    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


class EventStream:
    """``peer-cli --json watch``: JSON lines read by one thread into a bounded queue."""

    def __init__(self, socket_path: Path) -> None:
        argv = [PEER_CLI, "--socket", str(socket_path), "--json", "watch"]
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._events: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=10_000)
        self.seen: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.strip():
                try:
                    self._events.put(json.loads(line), timeout=1.0)
                except queue.Full:  # nobody is reading: drop, waits re-check state anyway
                    pass

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            event = self._events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        self.seen.append(event)
        return event

    def wait_event(self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            event = self.next(left)
            if event is not None and match(event):
                return event
        raise ScenarioTimeout(f"no event {what} within {timeout:.0f}s; saw {self.seen[-5:]}")

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._reader.join(5)


def wait_until(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    wake: EventStream | None = None,
    interval: float = 0.4,
) -> T:
    """Re-check ``check`` until it returns something truthy; woken early by ``wake`` events.

    The interval only paces the polling (peer-cli calls are expensive); the deadline bounds it.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            raise ScenarioTimeout(f"timed out after {timeout:.0f}s waiting for {what}")
        if wake is not None:
            wake.next(min(left, 2.0))
        else:
            time.sleep(min(interval, left))  # polling pace, bounded by the deadline above


@dataclass
class Peer:
    """One host: its directories, its daemon process and the address others dial."""

    name: str
    home: Path
    socket: Path
    address: str
    port: int
    launch: Callable[[Sequence[str], Path], subprocess.Popen[bytes]]
    static_peers: list[str] = field(default_factory=list)
    mdns: bool = False
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    streams: list[EventStream] = field(default_factory=list)

    @property
    def games(self) -> Path:
        return self.home / "games"

    @property
    def state(self) -> Path:
        return self.home / "state"

    @property
    def log(self) -> Path:
        return self.home / "lanpeerd.log"

    @property
    def listen(self) -> str:
        return f"{self.address}:{self.port}"

    def argv(self) -> list[str]:
        argv = [
            sys.executable, "-m", "lanpeer.main",
            "--games", str(self.games), "--state", str(self.state), "--socket", str(self.socket),
            "--bind", self.address, "--port", str(self.port), "--name", self.name,
            "--no-web",  # the web UI's default port is one per machine; scenarios don't use it
        ]  # fmt: skip
        if not self.mdns:
            argv.append("--no-mdns")
        for peer in self.static_peers:
            argv += ["--peer", peer]
        return argv + self.extra

    # -- process -------------------------------------------------------------------

    def spawn(self) -> None:
        self.games.mkdir(parents=True, exist_ok=True)
        self.proc = self.launch(self.argv(), self.log)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            if self.proc is None or self.proc.poll() is not None:
                rc = None if self.proc is None else self.proc.returncode
                raise AssertionError(f"{self.name}: lanpeerd exited {rc}:\n{self.log_tail()}")
            try:
                answer = self.cli("status", check=False, timeout=20)
            except subprocess.TimeoutExpired:
                return None  # a loaded box: the deadline above decides
            return answer.doc if answer.rc == 0 else None

        return wait_until(ready, timeout=timeout, what=f"{self.name} to answer status")

    def wait_advertising(self, timeout: float = 60.0) -> dict[str, Any]:
        """Until this host's own library has a revision (its first scan published games)."""
        what = f"{self.name} to advertise its library"
        return wait_until(lambda: (doc := self.status())["library_rev"] >= 1 and doc,
                          timeout=timeout, what=what)  # fmt: skip

    def start(self) -> Peer:
        self.spawn()
        self.wait_ready()
        return self

    def signal(self, sig: int) -> None:
        """SIGKILL / SIGSTOP / SIGCONT / SIGTERM this host's daemon (our own child only)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process must still die
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """Graceful SIGTERM; SIGKILL if it does not exit in ``timeout``."""
        if self.proc is None:
            return None
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def close(self) -> None:
        for stream in self.streams:
            stream.close()
        self.streams.clear()
        self.kill()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    # -- peer-cli ------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = CLI_TIMEOUT) -> Cli:
        argv = [PEER_CLI, "--socket", str(self.socket), "--json", *args]
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        answer = Cli(argv, done.returncode, done.stdout.decode(), done.stderr.decode(),
                     time.monotonic() - started)  # fmt: skip
        if check and answer.rc != 0:
            raise AssertionError(
                f"{self.name}: `peer-cli {' '.join(args)}` exited {answer.rc}: "
                f"{answer.out}{answer.err}\n--- lanpeerd log ---\n{self.log_tail()}"
            )
        return answer

    def watch(self) -> EventStream:
        stream = EventStream(self.socket)
        self.streams.append(stream)
        return stream

    def status(self) -> dict[str, Any]:
        return dict(self.cli("status").doc)

    def peers(self) -> list[dict[str, Any]]:
        return list(self.cli("peers").doc)

    def games_list(self) -> list[dict[str, Any]]:
        return list(self.cli("games").doc)

    def game(self, game_id: str) -> dict[str, Any] | None:
        return next((g for g in self.games_list() if g["id"] == game_id), None)

    def ops(self) -> list[dict[str, Any]]:
        return list(self.cli("ops").doc)

    def op(self, game_id: str) -> dict[str, Any] | None:
        return next((o for o in self.ops() if o["game_id"] == game_id), None)

    def download(self, game_id: str, *, install: bool = False) -> dict[str, Any]:
        args = ["download", game_id] + ([] if install else ["--no-install"])
        return dict(self.cli(*args).doc)

    def download_waiting(self, game_id: str, *, install: bool = False) -> subprocess.Popen[bytes]:
        """``download --wait --json`` running in the background; see ``finished_line``."""
        argv = [PEER_CLI, "--socket", str(self.socket), "--json", "download", game_id, "--wait"]
        if not install:
            argv.append("--no-install")
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    # -- conditions ----------------------------------------------------------------

    def wait_sees_game(self, game_id: str, offered_by: int = 1, timeout: float = 30.0) -> Any:
        def offered() -> dict[str, Any] | None:
            game = self.game(game_id)
            return game if game is not None and len(game["peers"]) >= offered_by else None

        try:
            what = f"{self.name} to see {game_id} on {offered_by} peer(s)"
            return wait_until(offered, timeout=timeout, what=what)
        except ScenarioTimeout as exc:
            raise ScenarioTimeout(
                f"{exc}\npeers: {self.cli('peers', check=False).out}"
                f"\n--- {self.name} log ---\n{self.log_tail()}"
            ) from None

    def wait_downloaded(self, game_id: str, timeout: float = 60.0) -> Any:
        def downloaded() -> dict[str, Any] | None:
            game = self.game(game_id)
            return game if game is not None and game["downloaded"] else None

        return wait_until(downloaded, timeout=timeout, what=f"{game_id} downloaded on {self.name}")

    def wait_progress(
        self, stream: EventStream, game_id: str, fraction: float, timeout: float = 30.0
    ) -> Any:
        """The first progress event of ``game_id`` at or past ``fraction`` of its bytes."""

        def far_enough(event: dict[str, Any]) -> bool:
            if event.get("game_id") != game_id or event.get("event") != "progress":
                return False
            total = event.get("bytes_total") or 0
            return total > 0 and event["bytes_done"] >= fraction * total

        return stream.wait_event(far_enough, timeout, f"{game_id} at {fraction:.0%}")


def finished_line(proc: subprocess.Popen[bytes], timeout: float) -> dict[str, Any]:
    """The ``finished`` JSON line of a ``download --wait --json`` process."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=5)
        raise ScenarioTimeout(f"download --wait did not finish in {timeout:.0f}s") from None
    for line in reversed(out.decode().splitlines()):
        if '"finished"' in line:
            return dict(json.loads(line))
    raise AssertionError(f"no finished line (rc={proc.returncode}): {out!r} {err!r}")
