"""The client end of the control socket: connect, send one request, read answer and events.

Owns socket paths, timeouts and turning "no daemon there" into ``DaemonUnreachable``. Blocking
stdlib sockets (a CLI does one thing at a time). Never renders anything and never imports
``lanpeer``: it speaks only ``lanpeer_proto.control``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Generator
from pathlib import Path

from lanpeer_proto.control import (
    MAX_SERVER_LINE,
    ErrorMessage,
    Event,
    EventMessage,
    LineSplitter,
    ResultMessage,
    decode_server_message,
    encode_request,
)
from lanpeer_proto.errors import RemoteProtocolError

from lanpeer_cli.sockpath import default_socket

__all__ = ["ControlClient", "DaemonUnreachable", "default_socket"]

CONNECT_TIMEOUT = 5.0
# Between connect attempts while the daemon's backlog is full: short next to a command.
CONNECT_RETRY = 0.05
# doctor and rescan do real work in the daemon; a minute means the daemon is stuck.
ANSWER_TIMEOUT = 60.0

START_HINT = "start it with `lanpeerd` (or `systemctl --user start lanpeerd`)"


class DaemonUnreachable(Exception):
    """No daemon answers on the socket; the message says how to start one."""


class ControlClient:
    """One connection to lanpeerd: ``ask`` a request, then ``events`` for streaming commands."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock = _connect(path)
        self._splitter = LineSplitter(MAX_SERVER_LINE)
        self._lines: list[bytes] = []

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ask(self, request: object) -> ResultMessage | ErrorMessage:
        try:
            self._sock.sendall(encode_request(request))  # type: ignore[arg-type]
        except OSError as exc:
            raise DaemonUnreachable(f"lanpeerd at {self.path} hung up: {exc}") from exc
        try:
            message = self._next(ANSWER_TIMEOUT)
        except EOFError as exc:
            raise DaemonUnreachable(f"lanpeerd at {self.path} closed without answering") from exc
        if isinstance(message, EventMessage):
            raise RemoteProtocolError("lanpeerd sent an event before answering")
        return message

    def events(self) -> Generator[Event, None, None]:
        """Events until the daemon ends the stream."""
        while True:
            try:
                message = self._next(None)
            except EOFError:
                return
            if isinstance(message, EventMessage):
                yield message.event

    def _next(self, timeout: float | None) -> ResultMessage | ErrorMessage | EventMessage:
        self._sock.settimeout(timeout)
        while not self._lines:
            try:
                data = self._sock.recv(1 << 16)
            except TimeoutError as exc:
                raise DaemonUnreachable(f"lanpeerd at {self.path} did not answer in time") from exc
            except OSError as exc:
                raise DaemonUnreachable(f"lanpeerd at {self.path} hung up: {exc}") from exc
            if not data:
                raise EOFError
            self._lines += self._splitter.feed(data)
        return decode_server_message(self._lines.pop(0))


def _connect(path: Path) -> socket.socket:
    """Connect within CONNECT_TIMEOUT. A Unix socket whose backlog is full refuses a
    non-blocking connect at once (EAGAIN): that is a busy daemon, so wait and try again."""
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        try:
            return _connect_once(path)
        except BlockingIOError as exc:
            if time.monotonic() >= deadline:
                raise DaemonUnreachable(
                    f"lanpeerd at {path} is too busy to accept a connection "
                    f"(tried for {CONNECT_TIMEOUT:.0f} s)"
                ) from exc
            time.sleep(CONNECT_RETRY)


def _connect_once(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT)
    try:
        sock.connect(str(path))
    except BlockingIOError:
        sock.close()
        raise
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        sock.close()
        raise DaemonUnreachable(
            f"lanpeerd is not running (no daemon at {path}); {START_HINT}"
        ) from exc
    except PermissionError as exc:
        sock.close()
        raise DaemonUnreachable(
            f"permission denied on {path}: the daemon there belongs to another user"
        ) from exc
    except OSError as exc:
        sock.close()
        raise DaemonUnreachable(f"cannot reach lanpeerd at {path}: {exc}; {START_HINT}") from exc
    return sock
