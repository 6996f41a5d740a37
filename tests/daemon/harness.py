"""Real lanpeerd processes for tests, driven through the real peer-cli.

Each daemon gets its own state, games, socket and port on 127.0.0.1 with mDNS off. Readiness is
a status answer on the control socket within a deadline, never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

BIN = Path(sys.executable).parent
PEER_CLI = str(BIN / "peer-cli")
READY_TIMEOUT = 20.0
CLI_TIMEOUT = 30.0

T = TypeVar("T")


def ask_raw(sock_path: Path, line: bytes, timeout: float = 5.0) -> bytes:
    """One raw request line and the first answer line (no peer-cli involved)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(sock_path))
        client.sendall(line)
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def ask_json(daemon: Lanpeerd, **request: Any) -> Any:
    """One control request as JSON fields, its answer as a document (no peer-cli involved)."""
    return json.loads(ask_raw(daemon.socket, json.dumps(request).encode() + b"\n"))


#: How long ``wait_until`` waits by default; modules that wait on downloads pass more.
WAIT_DEADLINE = 30.0
WAIT_POLL = 0.05  # seconds between checks; the deadline bounds the loop


def wait_until(what: str, predicate: Callable[[], T | None], timeout: float = WAIT_DEADLINE) -> T:
    """Re-check a daemon-side condition until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(WAIT_POLL)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def json_watch(
    daemon: Lanpeerd, *args: str, timeout: float = WAIT_DEADLINE
) -> subprocess.Popen[str]:
    """``peer-cli --json watch ARGS`` of ``daemon`` (the caller's first watch of it), returned
    once the daemon counts a subscriber, so no event it should see can come before it."""
    watch = subprocess.Popen(
        [PEER_CLI, "--socket", str(daemon.socket), "--json", "watch", *args],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        wait_until(
            "watch subscribed",
            lambda: ask_json(daemon, cmd="status")["result"]["subscribers"],
            timeout=timeout,
        )
    except BaseException:
        watch.kill()
        watch.wait()
        raise
    return watch


def hold_file_open(path: Path) -> subprocess.Popen[str]:
    """A child process holding ``path`` open (a "running game") until its stdin is closed or it
    is killed by pid; returned once the file is open."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; f = open(sys.argv[1], 'rb'); print('open', "
         "flush=True); sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "open", f"{path} could not be held open"
    return holder


def release_file(holder: subprocess.Popen[str] | None) -> None:
    """End a ``hold_file_open`` child (by its pid: a process the test started) and its pipes."""
    if holder is None:
        return
    if holder.poll() is None:
        holder.kill()
    holder.wait(5)
    for pipe in (holder.stdin, holder.stdout):
        if pipe is not None:
            pipe.close()


@dataclass
class Lanpeerd:
    home: Path
    name: str = "alpha"
    # 0: the daemon binds a port the kernel picks (no probe-then-bind race with other
    # processes); wait_ready() reads the real one from ``status`` (a restart reuses it).
    port: int = 0
    extra: list[str] = field(default_factory=list)
    web: str | None = None  # ADDR:PORT of the web UI; None: --no-web (47680 is one per host)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.home / "run" / "control.sock"

    @property
    def games(self) -> Path:
        return self.home / "games"

    @property
    def state(self) -> Path:
        return self.home / "state"

    @property
    def log(self) -> Path:
        return self.home / "lanpeerd.log"

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "lanpeer.main",
            "--games", str(self.games), "--state", str(self.state), "--socket", str(self.socket),
            "--port", str(self.port), "--bind", "127.0.0.1", "--no-mdns", "--name", self.name,
            *(["--web", self.web] if self.web else ["--no-web"]), *self.extra,
        ]  # fmt: skip

    def start(self, wait: bool = True) -> Lanpeerd:
        self.games.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stderr=log)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"lanpeerd exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                answer = ask_raw(self.socket, b'{"cmd":"status"}\n', timeout=2.0)
                if b'"status"' in answer:
                    listen = json.loads(answer)["result"]["listen"]
                    self.port = int(listen.rsplit(":", 1)[1])
                    return
            except OSError:
                pass
            time.sleep(0.05)  # polling interval of the readiness probe, bounded by the deadline
        raise AssertionError(f"lanpeerd not ready in {timeout}s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def cli(self, *args: str, json_output: bool = True, timeout: float = CLI_TIMEOUT) -> Cli:
        argv = [PEER_CLI, "--socket", str(self.socket), *(["--json"] if json_output else []), *args]
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
        return Cli(done.returncode, done.stdout.decode(), done.stderr.decode())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@dataclass
class Cli:
    rc: int
    out: str
    err: str

    @property
    def doc(self) -> Any:
        return json.loads(self.out)

    @property
    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]
