"""Control-socket protocol between ``peer-cli`` and ``lanpeerd``: JSON lines, sans-IO.

The one import path for the request / result / error / event models, and the owner of their
one-line JSON encoding and the line size bounds. Never touches a socket, asyncio, a file or the
clock: bytes in, models out. Malformed lines raise ``RemoteProtocolError`` and nothing else.

A client sends one request line; the daemon answers with one ``result`` or ``error`` line. After
a ``watch`` request, or a ``download`` with ``wait``, the daemon then streams ``event`` lines.

The models live in four modules this one re-exports, so ``from lanpeer_proto.control import X``
stays the one import path: ``control_types`` (field types, error and exit codes),
``control_requests``, ``control_views`` (answers) and ``control_events``. This module owns the
line codec: the size bounds, the server-line envelope, encoding and decoding, ``LineSplitter``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from lanpeer_proto.control_events import (
    Event,
    FinishedEvent,
    KeepEvent,
    LibraryChangedEvent,
    PeerDownEvent,
    PeerUpEvent,
    ProgressEvent,
    UploadEvent,
)
from lanpeer_proto.control_requests import (
    TRANSACTION_REQUESTS,
    AddPeerRequest,
    CancelRequest,
    DoctorRequest,
    DownloadAllRequest,
    DownloadRequest,
    FollowRequest,
    GameRequest,
    GamesRequest,
    InstallRequest,
    OpsRequest,
    PeersRequest,
    PinRequest,
    RemovePeerRequest,
    RemoveRequest,
    Request,
    RescanRequest,
    ShareRequest,
    ShutdownRequest,
    StatusRequest,
    UiRequest,
    UnfollowRequest,
    UninstallRequest,
    UnpinRequest,
    UpdateRequest,
    UploadsRequest,
    WatchRequest,
)
from lanpeer_proto.control_types import (
    CONTROL_VERSION,
    EXIT_CODES,
    EXIT_CONFLICT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNKNOWN,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    ControlErrorCode,
    ControlModel,
    Count,
    GameId,
    PeerName,
    Short,
    Text,
)
from lanpeer_proto.control_views import (
    AcceptedResult,
    DoctorCheck,
    DoctorResult,
    GameEntry,
    GameResult,
    GamesResult,
    HashingInfo,
    MirrorEntry,
    MirrorResult,
    OperationInfo,
    OpsResult,
    PeerEntry,
    PeersResult,
    Result,
    ShareDownloadEntry,
    ShareResult,
    SourceEntry,
    StatusResult,
    UiResult,
    UploadEntry,
    UploadsResult,
    VariantEntry,
)
from lanpeer_proto.errors import ErrorCode, RemoteProtocolError

__all__ = [
    "CONTROL_VERSION",
    "EXIT_CODES",
    "EXIT_CONFLICT",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_UNKNOWN",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "MAX_REQUEST_LINE",
    "MAX_SERVER_LINE",
    "TRANSACTION_REQUESTS",
    "AcceptedResult",
    "AddPeerRequest",
    "CancelRequest",
    "ControlErrorCode",
    "ControlModel",
    "Count",
    "DoctorCheck",
    "DoctorRequest",
    "DoctorResult",
    "DownloadAllRequest",
    "DownloadRequest",
    "ErrorMessage",
    "Event",
    "EventMessage",
    "FinishedEvent",
    "FollowRequest",
    "GameEntry",
    "GameId",
    "GameRequest",
    "GameResult",
    "GamesRequest",
    "GamesResult",
    "HashingInfo",
    "InstallRequest",
    "KeepEvent",
    "LibraryChangedEvent",
    "LineSplitter",
    "MirrorEntry",
    "MirrorResult",
    "OperationInfo",
    "OpsRequest",
    "OpsResult",
    "PeerDownEvent",
    "PeerEntry",
    "PeerName",
    "PeerUpEvent",
    "PeersRequest",
    "PeersResult",
    "PinRequest",
    "ProgressEvent",
    "RemovePeerRequest",
    "RemoveRequest",
    "Request",
    "RescanRequest",
    "Result",
    "ResultMessage",
    "ServerMessage",
    "ShareDownloadEntry",
    "ShareRequest",
    "ShareResult",
    "Short",
    "ShutdownRequest",
    "SourceEntry",
    "StatusRequest",
    "StatusResult",
    "Text",
    "UiRequest",
    "UiResult",
    "UnfollowRequest",
    "UninstallRequest",
    "UnpinRequest",
    "UpdateRequest",
    "UploadEntry",
    "UploadEvent",
    "UploadsRequest",
    "UploadsResult",
    "VariantEntry",
    "WatchRequest",
    "decode_request",
    "decode_server_message",
    "encode_request",
    "encode_server_message",
    "error_for",
]

# A request is a command and a few ids: 64 KiB is far beyond any real one and stops a client
# from making the daemon buffer without bound. Answers list up to thousands of games with peers:
# 32 MiB covers 10,000 games x 200 peer ids with room to spare.
MAX_REQUEST_LINE = 64 << 10
MAX_SERVER_LINE = 32 << 20

# ---------------------------------------------------------------- server lines (daemon -> client)


class ResultMessage(ControlModel):
    type: Literal["result"] = "result"
    result: Result


class ErrorMessage(ControlModel):
    type: Literal["error"] = "error"
    code: ControlErrorCode
    message: Text

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.code]


class EventMessage(ControlModel):
    type: Literal["event"] = "event"
    event: Event


ServerMessage = Annotated[ResultMessage | ErrorMessage | EventMessage, Field(discriminator="type")]

_REQUEST: TypeAdapter[Request] = TypeAdapter(Request)
_SERVER: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


def _encode(model: BaseModel, limit: int) -> bytes:
    line = model.model_dump_json().encode() + b"\n"
    if len(line) > limit:
        raise ValueError(f"control line of {len(line)} bytes exceeds the {limit}-byte limit")
    return line


def _load(line: bytes, limit: int) -> Any:
    if len(line) > limit:
        raise RemoteProtocolError(
            f"control line of {len(line)} bytes exceeds the {limit}-byte limit", ErrorCode.BAD_FRAME
        )
    return line.rstrip(b"\r\n")


def encode_request(request: BaseModel) -> bytes:
    """One JSON line for ``request`` (any member of ``Request``)."""
    return _encode(request, MAX_REQUEST_LINE)


def decode_request(line: bytes) -> Request:
    """Parse one request line; raises ``RemoteProtocolError`` for anything malformed."""
    raw = _load(line, MAX_REQUEST_LINE)
    try:
        request = _REQUEST.validate_json(raw)
    except ValidationError as exc:
        raise RemoteProtocolError(f"invalid control request: {_first_error(exc)}") from exc
    if request.v != CONTROL_VERSION:
        raise RemoteProtocolError(
            f"control version {request.v} is not supported (this daemon speaks {CONTROL_VERSION})",
            ErrorCode.UNSUPPORTED_VERSION,
        )
    return request


def encode_server_message(message: ResultMessage | ErrorMessage | EventMessage) -> bytes:
    return _encode(message, MAX_SERVER_LINE)


def decode_server_message(line: bytes) -> ServerMessage:
    """Parse one daemon line; raises ``RemoteProtocolError`` for anything malformed."""
    raw = _load(line, MAX_SERVER_LINE)
    try:
        return _SERVER.validate_json(raw)
    except ValidationError as exc:
        raise RemoteProtocolError(f"invalid control answer: {_first_error(exc)}") from exc


def error_for(exc: RemoteProtocolError) -> ErrorMessage:
    """The error line the daemon sends back for a malformed request."""
    code = (
        ControlErrorCode.UNSUPPORTED_VERSION
        if exc.code is ErrorCode.UNSUPPORTED_VERSION
        else ControlErrorCode.BAD_REQUEST
    )
    return ErrorMessage(code=code, message=exc.message[:4096])


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return "invalid"
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "line"
    return f"{where}: {first['msg']}"[:512]


class LineSplitter:
    """Splits a byte stream into lines, refusing any line longer than ``limit``.

    Sans-IO: feed it what the socket gave, take complete lines out.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        lines: list[bytes] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            lines.append(self._take(end + 1))
        if len(self._buffer) > self._limit:
            raise RemoteProtocolError(
                f"control line exceeds the {self._limit}-byte limit", ErrorCode.BAD_FRAME
            )
        return lines

    def _take(self, size: int) -> bytes:
        if size > self._limit:
            raise RemoteProtocolError(
                f"control line exceeds the {self._limit}-byte limit", ErrorCode.BAD_FRAME
            )
        line = bytes(self._buffer[:size])
        del self._buffer[:size]
        return line
