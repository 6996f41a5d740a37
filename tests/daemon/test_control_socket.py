"""The control socket of a real lanpeerd: permissions, uid check, lock, stale socket, bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.daemon.harness import Lanpeerd, ask_raw

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)

NOBODY_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("connect-error", exc.errno); sys.exit(0)
s.sendall(b'{"cmd": "status"}\\n')
try:
    print("answer", s.recv(65536).decode().strip())
except OSError as exc:
    print("recv-error", exc.errno)
"""

SETPRIV = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="running a client as another uid needs root and setpriv",
)


def _as_nobody(sock_path: Path) -> str:
    done = subprocess.run(
        [*SETPRIV, "/usr/bin/python3", "-c", NOBODY_CLIENT, str(sock_path)],
        capture_output=True, timeout=20, check=True, cwd="/",
    )  # fmt: skip
    return done.stdout.decode().strip()


def test_socket_is_0600_in_a_0700_dir(daemon: Lanpeerd) -> None:
    assert stat.S_ISSOCK(daemon.socket.stat().st_mode)
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.socket.parent.stat().st_mode) == 0o700


@needs_root
def test_other_uid_cannot_even_open_the_socket(daemon: Lanpeerd) -> None:
    """File permissions stop another uid before the daemon sees it (EACCES)."""
    assert _as_nobody(daemon.socket) == "connect-error 13"


@needs_root
def test_other_uid_is_refused_by_peercred_when_permissions_are_opened(
    daemons: list[Lanpeerd],
) -> None:
    """Even with the file opened up (a careless admin), SO_PEERCRED refuses the client."""
    home = Path(tempfile.mkdtemp(prefix="lanpeer-peercred-"))
    try:
        running = Lanpeerd(home).start()
        daemons.append(running)
        for path in (home, running.socket.parent):
            path.chmod(0o711)
        running.socket.chmod(0o666)
        answer = _as_nobody(running.socket)
        assert answer.startswith("answer ")
        error = json.loads(answer.removeprefix("answer "))
        assert error["type"] == "error"
        assert error["code"] == "forbidden"
        assert "uid 65534" in error["message"]
        assert running.cli("status").rc == 0  # the daemon keeps serving its owner
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_second_instance_on_the_same_socket_refuses(daemon: Lanpeerd, tmp_path: Path) -> None:
    second = Lanpeerd(daemon.home)  # same socket, another port
    second.start(wait=False)
    assert second.proc is not None
    assert second.proc.wait(20) != 0
    assert "already serving" in second.log_text()
    assert daemon.cli("status").rc == 0
    assert daemon.socket.exists()


@pytest.mark.process
def test_second_instance_on_the_same_state_dir_refuses(daemon: Lanpeerd, tmp_path: Path) -> None:
    """Two daemons on one --state would be one identity on the LAN twice (issue 13)."""
    other_socket = tmp_path / "other" / "control.sock"
    second = Lanpeerd(daemon.home, extra=["--socket", str(other_socket)])
    second.start(wait=False)
    assert second.proc is not None
    assert second.proc.wait(20) == 1
    assert f"already uses the state dir {daemon.state}" in second.log_text()
    assert not other_socket.exists()  # it cleaned up the socket it had bound
    assert daemon.cli("status").rc == 0


@pytest.mark.process
def test_shutdown_leaves_no_lock_files(daemon: Lanpeerd) -> None:
    assert daemon.stop() == 0
    assert sorted(p.name for p in daemon.socket.parent.iterdir()) == []
    assert not (daemon.state / "lanpeerd.lock").exists()
    restarted = Lanpeerd(daemon.home, port=daemon.port).start()  # and a restart still works
    try:
        assert restarted.cli("status").rc == 0
    finally:
        restarted.kill()


def test_stale_socket_after_kill_9_is_replaced(daemon: Lanpeerd) -> None:
    daemon.kill()
    assert daemon.socket.exists()  # left behind by SIGKILL
    restarted = Lanpeerd(daemon.home, port=daemon.port).start()
    try:
        assert restarted.cli("status").rc == 0
    finally:
        restarted.kill()


def test_malformed_and_oversized_requests_get_errors_and_the_daemon_keeps_serving(
    daemon: Lanpeerd,
) -> None:
    for line in (b"garbage\n", b'{"cmd": "nope"}\n', b'{"cmd": "install", "game_id": "../x"}\n'):
        answer = json.loads(ask_raw(daemon.socket, line))
        assert answer["type"] == "error"
        assert answer["code"] == "bad_request"
    huge = b'{"cmd": "status", "pad": "' + b"x" * (1 << 20) + b'"}\n'
    try:
        answer = json.loads(ask_raw(daemon.socket, huge))
        assert answer["code"] == "bad_request"
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon may hang up while we are still sending: also a refusal
    assert json.loads(ask_raw(daemon.socket, b'{"cmd": "status"}\n'))["type"] == "result"


def test_sigterm_stops_gracefully_and_removes_the_socket(daemon: Lanpeerd) -> None:
    assert daemon.stop(signal.SIGTERM) == 0
    assert not daemon.socket.exists()
    assert "stopped" in daemon.log_text()


def test_bad_config_file_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    config = tmp_path / "lanpeerd.toml"
    config.write_text('name = "x"\nbogus_key = 1\n')
    running = Lanpeerd(tmp_path / "d", extra=["--config", str(config)])
    running.start(wait=False)
    assert running.proc is not None
    assert running.proc.wait(20) == 2
    assert "bogus_key" in running.log_text()


def test_config_file_applies_and_flags_override_it(tmp_path: Path, daemons: list[Lanpeerd]) -> None:
    config = tmp_path / "lanpeerd.toml"
    config.write_text('name = "from-file"\nmax-upload = "50MB/s"\n')
    running = Lanpeerd(tmp_path / "d", name="from-flag", extra=["--config", str(config)]).start()
    daemons.append(running)
    status = running.cli("status").doc
    assert status["name"] == "from-flag"
    checks = {c["name"]: c for c in running.cli("doctor").doc}
    assert "upload 50.0 MB/s" in checks["bandwidth caps"]["summary"]
