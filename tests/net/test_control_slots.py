"""Issue 11, finding 8: the control socket is not starved by watchers, and peer-cli's connect
waits out a full backlog instead of failing at once."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
from lanpeer_cli.client import _connect
from lanpeer_proto.control import StatusRequest, WatchRequest, encode_request

from lanpeer.control.server import MAX_STREAMS
from tests.daemon.harness import Lanpeerd, ask_raw

WATCHERS = 70


def _first_line(sock: socket.socket) -> dict[str, object]:
    data = b""
    while not data.endswith(b"\n"):
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    line: dict[str, object] = json.loads(data.split(b"\n")[0])
    return line


@pytest.mark.process
def test_seventy_watchers_and_status_still_answers_within_a_second(tmp_path: Path) -> None:
    daemon = Lanpeerd(tmp_path / "alpha").start()
    watchers: list[socket.socket] = []
    try:
        for _ in range(WATCHERS):
            sock = _connect(daemon.socket)  # peer-cli's connect: waits out a full backlog
            sock.settimeout(5.0)
            sock.sendall(encode_request(WatchRequest()))
            watchers.append(sock)
        answers = [_first_line(sock) for sock in watchers]  # every watcher is answered
        streaming = [a for a in answers if a.get("ok") is not False and "code" not in a]
        refused = [a for a in answers if a.get("code") == "conflict"]
        assert len(streaming) == MAX_STREAMS
        assert len(refused) == WATCHERS - MAX_STREAMS
        started = time.monotonic()
        status = ask_raw(daemon.socket, encode_request(StatusRequest()), timeout=1.0)
        assert time.monotonic() - started < 1.0
        assert b'"status"' in status
        assert daemon.cli("status").rc == 0
    finally:
        for sock in watchers:
            sock.close()
        daemon.kill()


def test_connect_waits_while_the_backlog_is_full(tmp_path: Path) -> None:
    """A Unix socket with a full backlog refuses a connect at once (EAGAIN); that is a busy
    daemon, not a missing one. The listener here starts accepting 0.3 s later (the fault)."""
    path = tmp_path / "busy.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    listener.settimeout(5.0)  # bounds the accepting thread
    queued = []
    try:
        while True:  # fill the backlog
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            queued.append(sock)
            try:
                sock.connect(str(path))
            except BlockingIOError:
                break
        accepted: list[socket.socket] = []

        def accept_later() -> None:
            time.sleep(0.3)  # the daemon is busy this long (the injected fault)
            for _ in range(len(queued)):  # those in the backlog, then the client's
                accepted.append(listener.accept()[0])

        worker = threading.Thread(target=accept_later)
        worker.start()
        client = _connect(path)
        client.close()
        worker.join(5)
        for conn in accepted:
            conn.close()
    finally:
        for sock in queued:
            sock.close()
        listener.close()
