"""The control socket: the one module that owns the Unix socket of lanpeerd (SPEC §4, §9).

Owns the 0700 runtime dir, the instance lock, stale-socket removal, the 0600 bind, the
SO_PEERCRED uid check, bounded request lines and event streaming for ``watch`` / ``--wait``.
Never interprets a command: ``answer`` does. A client's mistake gets an error line and closes
at most that connection; nothing a client sends can stop the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

from lanpeer_proto.control import (
    MAX_REQUEST_LINE,
    TRANSACTION_REQUESTS,
    AcceptedResult,
    ControlErrorCode,
    DownloadRequest,
    ErrorMessage,
    EventMessage,
    FinishedEvent,
    Request,
    ResultMessage,
    WatchRequest,
    decode_request,
    encode_server_message,
    error_for,
)
from lanpeer_proto.errors import RemoteProtocolError

from lanpeer.control.events import EventHub, Subscription
from lanpeer.errors import LanpeerError
from lanpeer.locks import LockFile

log = logging.getLogger(__name__)

Answer = Callable[[Request], Awaitable[ResultMessage | ErrorMessage]]

# A person types one command at a time; 64 command clients covers scripts, and bounds the fds
# a local misbehaving script can pin. Accepting waits while all are busy.
MAX_CLIENTS = 64
# `watch` and `--wait` streams live as long as they like, so they get their own budget: a
# client that turns into a stream frees its command slot, and streams past this are refused.
MAX_STREAMS = 64
# A request is one short line: a client that takes longer than this to send it is stuck.
REQUEST_TIMEOUT = 10.0
# After a failed accept (EMFILE): long enough not to spin, short enough to go unnoticed.
ACCEPT_RETRY = 0.1


class ControlSocket:
    """Lock, bind and serve the control socket at ``path``."""

    def __init__(self, path: Path, answer: Answer, events: EventHub) -> None:
        self.path = path
        self._answer = answer
        self._events = events
        self._lock = LockFile(
            path.with_name(path.name + ".lock"),
            f"is already serving {path}; "
            "stop it with `peer-cli shutdown`, or give this one its own --socket",
        )
        self._sock: socket.socket | None = None
        self._clients = asyncio.Semaphore(MAX_CLIENTS)
        self._streams = 0  # clients streaming events (each moved off a command slot)

    def bind(self) -> None:
        """Take the instance lock, remove a stale socket, bind 0600. Raises AlreadyRunningError."""
        prepare_socket_dir(self.path.parent)
        self._lock.take()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # we hold the lock: whatever is here is stale
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is born 0600: no chmod race
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old_umask)
        sock.listen(MAX_CLIENTS)
        sock.setblocking(False)
        self._sock = sock
        log.info("control socket listening on %s", self.path)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._sock = None
        self._lock.release()  # last: the socket is gone before another daemon may bind it

    async def serve(self) -> None:
        """Accept clients until cancelled; each client runs in this server's task group."""
        assert self._sock is not None, "bind() first"
        loop = asyncio.get_running_loop()
        async with asyncio.TaskGroup() as clients:
            while True:
                await self._clients.acquire()
                try:
                    conn, _ = await loop.sock_accept(self._sock)
                except OSError as exc:  # e.g. out of fds: keep serving the clients we have
                    self._clients.release()
                    log.warning("control socket accept failed: %s", exc)
                    await asyncio.sleep(ACCEPT_RETRY)
                    continue
                clients.create_task(self._serve_client(conn))

    async def _serve_client(self, conn: socket.socket) -> None:
        slot = _Slot()
        try:
            await self._talk(conn, slot)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client went away or stalled: only its connection ends
        except Exception:
            log.exception("control client failed")
        finally:
            conn.close()
            if slot.streaming:
                self._streams -= 1
            else:
                self._clients.release()

    def _start_streaming(self, slot: _Slot) -> bool:
        """Move a client from the command budget to the stream budget; False when full."""
        if self._streams >= MAX_STREAMS:
            return False
        self._streams += 1
        slot.streaming = True
        self._clients.release()
        return True

    async def _talk(self, conn: socket.socket, slot: _Slot) -> None:
        reader, writer = await asyncio.open_unix_connection(sock=conn, limit=MAX_REQUEST_LINE)
        try:
            refusal = refuse_peer(conn)
            if refusal is not None:
                log.warning("control client refused: %s", refusal.message)
                await _read_request_line(reader)  # unread bytes would reset the connection
                await _send(writer, refusal)
                return
            while line := await _read_request_line(reader):
                if not await self._handle_line(line, reader, writer, slot):
                    return
        finally:
            writer.close()

    async def _handle_line(
        self,
        line: bytes | ErrorMessage,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        slot: _Slot,
    ) -> bool:
        """Answer one line; False when the connection should end."""
        if isinstance(line, ErrorMessage):
            await _send(writer, line)
            return False
        try:
            request = decode_request(line)
        except RemoteProtocolError as exc:
            await _send(writer, error_for(exc))
            return True
        stream_for = _stream_filter(request)
        if stream_for is None:
            await _send(writer, await self._safe_answer(request))
            return True
        if not self._start_streaming(slot):
            await _send(writer, ErrorMessage(
                code=ControlErrorCode.CONFLICT,
                message=f"{MAX_STREAMS} watch/--wait streams are already open; close one",
            ))  # fmt: skip
            return False
        game_id, until_finished = stream_for
        with self._events.subscribe(game_id, only_game=until_finished is not None) as subscription:
            answer = await self._safe_answer(request)
            await _send(writer, answer)
            if isinstance(answer, ResultMessage) and not _nothing_to_follow(answer, until_finished):
                await _stream(subscription, until_finished, reader, writer)
        return False

    async def _safe_answer(self, request: Request) -> ResultMessage | ErrorMessage:
        try:
            return await self._answer(request)
        except LanpeerError as exc:
            return error_message(exc)
        except Exception as exc:
            log.exception("control command %s failed", request.cmd)
            return ErrorMessage(code=ControlErrorCode.FAILED, message=f"internal error: {exc}")


class _Slot:
    """Which budget a client holds: a command slot, or (after `watch`/`--wait`) a stream."""

    streaming = False


def error_message(exc: LanpeerError) -> ErrorMessage:
    """The error line for a daemon error: the control code its class carries."""
    return ErrorMessage(code=exc.control_code, message=str(exc)[:4096])


def _nothing_to_follow(answer: ResultMessage, until_finished: str | None) -> bool:
    """A waited command that queued nothing (``update`` of an up-to-date game): no stream."""
    result = answer.result
    return (
        until_finished is not None
        and isinstance(result, AcceptedResult)
        and result.operation is None
    )


def _stream_filter(request: Request) -> tuple[str | None, str | None] | None:
    """(game filter, game whose FinishedEvent ends the stream) for streaming requests."""
    if isinstance(request, WatchRequest):
        return request.game_id, None
    if isinstance(request, (DownloadRequest, *TRANSACTION_REQUESTS)) and request.wait:
        return request.game_id, request.game_id
    return None


async def _stream(
    subscription: Subscription,
    until_finished: str | None,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Send events until ``until_finished`` finishes, the client hangs up, or we are cancelled."""
    async with asyncio.TaskGroup() as group:
        pump = group.create_task(_pump(subscription, until_finished, writer))
        hangup = group.create_task(_wait_hangup(reader))
        await asyncio.wait({pump, hangup}, return_when=asyncio.FIRST_COMPLETED)
        pump.cancel()
        hangup.cancel()


async def _pump(
    subscription: Subscription, until_finished: str | None, writer: asyncio.StreamWriter
) -> None:
    with contextlib.suppress(ConnectionError):
        while True:
            event = await subscription.wait_event()
            await _send(writer, EventMessage(event=event))
            if isinstance(event, FinishedEvent) and event.game_id == until_finished:
                return


async def _wait_hangup(reader: asyncio.StreamReader) -> None:
    """Any byte or EOF from a streaming client ends its stream."""
    with contextlib.suppress(ConnectionError):
        await reader.read(1)


async def _read_request_line(reader: asyncio.StreamReader) -> bytes | ErrorMessage:
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial  # EOF: a final unterminated line is still answered; b"" ends
    except asyncio.LimitOverrunError:
        return ErrorMessage(
            code=ControlErrorCode.BAD_REQUEST,
            message=f"request line exceeds the {MAX_REQUEST_LINE}-byte limit",
        )


async def _send(
    writer: asyncio.StreamWriter, message: ResultMessage | ErrorMessage | EventMessage
) -> None:
    writer.write(encode_server_message(message))
    await writer.drain()


def peer_uid(conn: socket.socket) -> int:
    """The kernel-verified uid of the client, captured at connect()."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def refuse_peer(conn: socket.socket) -> ErrorMessage | None:
    """None when the client may talk to us: same uid as the daemon, or root. Fails closed."""
    try:
        uid = peer_uid(conn)
    except OSError as exc:
        return ErrorMessage(
            code=ControlErrorCode.FORBIDDEN, message=f"cannot verify the client's uid: {exc}"
        )
    if uid in (os.geteuid(), 0):
        return None
    return ErrorMessage(
        code=ControlErrorCode.FORBIDDEN,
        message=f"uid {uid} may not control this lanpeerd (it runs as uid {os.geteuid()})",
    )


def prepare_socket_dir(directory: Path) -> None:
    """Create the socket's dir 0700; refuse one another user owns."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.geteuid():
        raise LanpeerError(
            f"control socket dir {directory} belongs to uid {info.st_uid}, not to us; "
            "remove it or pass --socket in a dir you own"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        log.warning(
            "control socket dir %s is not private (mode %o)", directory, stat.S_IMODE(info.st_mode)
        )
