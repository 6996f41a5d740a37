"""Control-socket protocol between ``peer-cli`` and ``lanpeerd``: JSON lines, sans-IO.

Owns the request / result / error / event models, their one-line JSON encoding, the line size
bounds and ``CONTROL_VERSION``. Never touches a socket, asyncio, a file or the clock: bytes in,
models out. Malformed lines raise ``RemoteProtocolError`` and nothing else.

A client sends one request line; the daemon answers with one ``result`` or ``error`` line. After
a ``watch`` request, or a ``download`` with ``wait``, the daemon then streams ``event`` lines.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from lanpeer_proto.errors import ErrorCode, RemoteProtocolError
from lanpeer_proto.paths import GAME_ID_RE

CONTROL_VERSION = 1

# A request is a command and a few ids: 64 KiB is far beyond any real one and stops a client
# from making the daemon buffer without bound. Answers list up to thousands of games with peers:
# 32 MiB covers 10,000 games x 200 peer ids with room to spare.
MAX_REQUEST_LINE = 64 << 10
MAX_SERVER_LINE = 32 << 20

GameId = Annotated[str, Field(pattern=GAME_ID_RE.pattern, max_length=64)]
Short = Annotated[str, Field(max_length=256)]
PeerName = Annotated[str, Field(min_length=1, max_length=256)]  # a peer id (prefix) or name
Text = Annotated[str, Field(max_length=4096)]
Count = Annotated[int, Field(ge=0)]


class ControlErrorCode(StrEnum):
    """Why a request failed; each maps to a peer-cli exit code (``EXIT_CODES``)."""

    FAILED = "failed"  # the operation ran and failed
    NOT_AVAILABLE = "not_available"  # the daemon part that serves this is not running
    BAD_REQUEST = "bad_request"  # malformed or invalid request line
    UNSUPPORTED_VERSION = "unsupported_version"
    UNREACHABLE = "unreachable"  # client side only: no daemon on the socket
    UNKNOWN_GAME = "unknown_game"
    UNKNOWN_PEER = "unknown_peer"
    CONFLICT = "conflict"  # operation already active, game busy
    SHUTTING_DOWN = "shutting_down"
    FORBIDDEN = "forbidden"  # client of another uid (SO_PEERCRED)


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_UNKNOWN = 4
EXIT_CONFLICT = 5

EXIT_CODES: dict[ControlErrorCode, int] = {
    ControlErrorCode.FAILED: EXIT_FAILED,
    ControlErrorCode.NOT_AVAILABLE: EXIT_FAILED,
    ControlErrorCode.BAD_REQUEST: EXIT_USAGE,
    ControlErrorCode.UNSUPPORTED_VERSION: EXIT_USAGE,
    ControlErrorCode.UNREACHABLE: EXIT_UNREACHABLE,
    ControlErrorCode.UNKNOWN_GAME: EXIT_UNKNOWN,
    ControlErrorCode.UNKNOWN_PEER: EXIT_UNKNOWN,
    ControlErrorCode.CONFLICT: EXIT_CONFLICT,
    ControlErrorCode.SHUTTING_DOWN: EXIT_FAILED,
    ControlErrorCode.FORBIDDEN: EXIT_UNREACHABLE,
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


# ---------------------------------------------------------------- requests (client -> daemon)


class _Request(_Model):
    v: Annotated[int, Field(ge=1)] = CONTROL_VERSION


class StatusRequest(_Request):
    cmd: Literal["status"] = "status"


class PeersRequest(_Request):
    cmd: Literal["peers"] = "peers"


class GamesRequest(_Request):
    cmd: Literal["games"] = "games"


class DownloadRequest(_Request):
    cmd: Literal["download"] = "download"
    game_id: GameId
    version: Short | None = None
    install: bool = True
    wait: bool = False  # stream progress events until the operation finishes
    from_peer: PeerName | None = None  # fetch the content this peer (id prefix or name) holds
    variant: Short | None = None  # fetch the content whose manifest_hash (hex) starts so


class InstallRequest(_Request):
    cmd: Literal["install"] = "install"
    game_id: GameId
    wait: bool = True


class UpdateRequest(_Request):
    cmd: Literal["update"] = "update"
    game_id: GameId
    version: Short | None = None  # this version instead of the newest a peer offers
    wait: bool = True


class UninstallRequest(_Request):
    cmd: Literal["uninstall"] = "uninstall"
    game_id: GameId
    wait: bool = True


class RemoveRequest(_Request):
    cmd: Literal["remove"] = "remove"
    game_id: GameId
    wait: bool = True
    yes: bool = False  # delete it even when no connected peer has a copy


class CancelRequest(_Request):
    cmd: Literal["cancel"] = "cancel"
    game_id: GameId


class OpsRequest(_Request):
    cmd: Literal["ops"] = "ops"
    all: bool = False  # finished operations too, not only active ones and standing failures


class WatchRequest(_Request):
    cmd: Literal["watch"] = "watch"
    game_id: GameId | None = None  # only events of this game (peer events always pass)


class RescanRequest(_Request):
    cmd: Literal["rescan"] = "rescan"
    game_id: GameId | None = None


class AddPeerRequest(_Request):
    cmd: Literal["add_peer"] = "add_peer"
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)]


class RemovePeerRequest(_Request):
    cmd: Literal["remove_peer"] = "remove_peer"
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)]


class GameRequest(_Request):
    cmd: Literal["game"] = "game"
    game_id: GameId


class UploadsRequest(_Request):
    cmd: Literal["uploads"] = "uploads"


class DoctorRequest(_Request):
    cmd: Literal["doctor"] = "doctor"


class ShutdownRequest(_Request):
    cmd: Literal["shutdown"] = "shutdown"


class UiRequest(_Request):
    """The web UI's address with its access token (SPEC §9b): ``peer-cli ui``."""

    cmd: Literal["ui"] = "ui"


class PinRequest(_Request):
    """Keep a game at a version (the one here when ``version`` is None): auto-update skips it
    and ``download`` without ``--version`` fetches that one."""

    cmd: Literal["pin"] = "pin"
    game_id: GameId
    version: Short | None = None


class UnpinRequest(_Request):
    cmd: Literal["unpin"] = "unpin"
    game_id: GameId


class FollowRequest(_Request):
    """Mirror a peer: download every game it offers that this host lacks or has older, now and
    as its library changes. ``peer`` is a peer id (a prefix is enough) or a peer name."""

    cmd: Literal["follow"] = "follow"
    peer: PeerName
    install: bool = True


class UnfollowRequest(_Request):
    cmd: Literal["unfollow"] = "unfollow"
    peer: PeerName


class DownloadAllRequest(_Request):
    """``download --all``: queue every offered game this host lacks or has older."""

    cmd: Literal["download_all"] = "download_all"
    from_peer: PeerName | None = None  # a peer id (prefix) or name; None: every connected peer
    match: Short | None = None  # only games whose id or name contains this (any case)
    install: bool = True


class ShareRequest(_Request):
    """The HTTP share's address and who is downloading from it (SPEC §9c)."""

    cmd: Literal["share"] = "share"


Request = Annotated[
    StatusRequest
    | PeersRequest
    | GamesRequest
    | DownloadRequest
    | InstallRequest
    | UpdateRequest
    | UninstallRequest
    | RemoveRequest
    | CancelRequest
    | OpsRequest
    | WatchRequest
    | RescanRequest
    | AddPeerRequest
    | RemovePeerRequest
    | UploadsRequest
    | GameRequest
    | DoctorRequest
    | ShutdownRequest
    | UiRequest
    | PinRequest
    | UnpinRequest
    | FollowRequest
    | UnfollowRequest
    | DownloadAllRequest
    | ShareRequest,
    Field(discriminator="cmd"),
]

#: Transactions of SPEC §8 that run in the general lane.
TRANSACTION_REQUESTS = (InstallRequest, UpdateRequest, UninstallRequest, RemoveRequest)

# ---------------------------------------------------------------- documents (stable JSON fields)


class HashingInfo(_Model):
    """A download waiting for a seeder to hash the game: how far that seeder has got (SPEC §9a
    ``hashing``; the seeder furthest along when several hash it)."""

    peer_id: Short
    name: Short = ""
    hashed_bytes: Count
    total_bytes: Count
    queued: bool = False  # that host hashes other games first; this one has not started


class OperationInfo(_Model):
    """One queued or running operation (SPEC §9 ``ops``)."""

    game_id: GameId
    kind: Short  # download, install, update, uninstall, remove
    state: Short  # queued, running, stalled, verifying, installing, ...
    lane: Short  # download or general
    queue_position: Count | None = None  # None when running
    bytes_done: Count = 0
    bytes_total: Count = 0
    rate: Annotated[float, Field(ge=0)] = 0.0  # bytes/s
    eta: Annotated[float, Field(ge=0)] | None = None  # seconds
    sources: list[Short] = Field(default_factory=list)  # peer ids
    partial_sources: list[Short] = Field(default_factory=list)  # of sources: downloaders too
    reason: Text | None = None  # why a stalled operation waits
    hashing: HashingInfo | None = None  # stalled until a seeder has hashed the game
    # finished operations only (``ops --all``, and a failure until the game's next success):
    finished_at: float | None = None  # seconds since the epoch
    ok: bool | None = None
    error: Text | None = None
    hint: Text | None = None  # what to do, when the cause is known
    retry_in: Annotated[float, Field(ge=0)] | None = None  # auto-update: seconds to next try


class PeerEntry(_Model):
    """One known peer (SPEC §9 ``peers``)."""

    peer_id: Short
    name: Short
    address: Short  # host:port of its listener
    proto_ver: Short
    library_rev: Count
    last_seen: float  # seconds since the epoch
    games: Count
    connected: bool = True
    rate_up: Annotated[float, Field(ge=0)] = 0.0  # bytes/s we upload to it now
    rate_down: Annotated[float, Field(ge=0)] = 0.0  # bytes/s we download from it now


class SourceEntry(_Model):
    """One peer offering a game (SPEC §9a ``games.sources``)."""

    peer_id: Short
    version: Short
    manifest_hash: Short | None = None  # hex; None while that peer still hashes it
    partial: bool = False  # a swarm source holding only part of it
    # Of a partial source: what its last have-set said it holds (None: a full copy).
    held_chunks: Count | None = None
    held_bytes: Count | None = None


class VariantEntry(_Model):
    """Peers holding different bytes under one version string (SPEC §9a ``games.variants``)."""

    version: Short
    manifest_hash: Short
    peers: list[Short]
    size: Count = 0  # bytes of that content


class GameEntry(_Model):
    """One game of the merged library (SPEC §9 ``games``)."""

    id: GameId
    name: Short
    version: Short | None  # None when the game is not on this host
    downloaded: bool
    installed: bool
    state: Short  # remote, downloaded, installed, local-only, busy, hashing ...
    size: Count
    peers: list[Short]
    newest_version: Short | None
    update_available: bool
    ready_peers: list[Short] = Field(default_factory=list)  # offer the newest version, hashed
    # Peers serving part of the version our download of it fetches (SPEC §7a): other
    # downloaders, apart from ``peers`` (full copies). Known only while we download it.
    partial_peers: list[Short] = Field(default_factory=list)
    #: What local/ holds, apart from ``version`` (what is downloaded); None when not installed
    #: or installed before lanpeer kept that record.
    installed_version: Short | None = None
    sources: list[SourceEntry] = Field(default_factory=list)
    variants: list[VariantEntry] = Field(default_factory=list)
    #: While this host hashes the game (state ``hashing``): bytes hashed of the total.
    hashed_bytes: Count = 0
    hash_total: Count = 0
    pinned: Short | None = None  # the version this game is pinned at (``peer-cli pin``)


class UploadEntry(_Model):
    """One peer pulling one game from this host (SPEC §9a ``uploads``)."""

    peer_id: Short
    name: Short
    game_id: GameId
    bytes: Count
    rate: Annotated[float, Field(ge=0)]  # bytes/s over the last seconds
    since: float  # seconds since the epoch
    #: "http": a browser or download manager on the HTTP share (SPEC §9c); ``peer_id`` is then
    #: the client's address (it has no lanpeer identity) and ``bytes`` those of its response.
    via: Literal["peer", "http"] = "peer"


class DoctorCheck(_Model):
    """One check of ``doctor``: what was looked at, what was found, what to do."""

    name: Short
    status: Literal["ok", "warn", "fail", "info"]
    summary: Text
    hint: Text | None = None


class StatusResult(_Model):
    kind: Literal["status"] = "status"
    peer_id: Short
    name: Short
    listen: Short  # host:port
    roots: list[Text]
    library_rev: Count
    operations: list[OperationInfo]
    games: Count = 0
    peers: Count = 0
    subscribers: Count = 0  # clients streaming events (watch, --wait)
    control_version: int = CONTROL_VERSION
    parts: dict[Short, bool] = Field(default_factory=dict)  # which daemon parts are running
    uploads: Count = 0  # (peer, game) upload sessions now (`peer-cli uploads` lists them)
    upload_rate: Annotated[float, Field(ge=0)] = 0.0  # bytes/s over all of them


class PeersResult(_Model):
    kind: Literal["peers"] = "peers"
    peers: list[PeerEntry]


class GamesResult(_Model):
    kind: Literal["games"] = "games"
    games: list[GameEntry]


class OpsResult(_Model):
    kind: Literal["ops"] = "ops"
    ops: list[OperationInfo]


class GameResult(_Model):
    """One game in full (SPEC §9a ``game GAME``)."""

    kind: Literal["game"] = "game"
    game: GameEntry
    path: Text | None = None  # its dir on this host
    operation: OperationInfo | None = None  # queued or running now
    history: list[OperationInfo] = Field(default_factory=list)  # finished, oldest first
    pin: Short | None = None  # a pinned version (none: follows the newest)


class UploadsResult(_Model):
    kind: Literal["uploads"] = "uploads"
    uploads: list[UploadEntry]
    total_bytes: Count = 0  # uploaded since the daemon started


class AcceptedResult(_Model):
    """A command that was accepted: an operation queued, a rescan started, a peer dialled."""

    kind: Literal["accepted"] = "accepted"
    message: Text
    game_id: GameId | None = None
    operation: OperationInfo | None = None


class MirrorEntry(_Model):
    game_id: GameId
    version: Short
    size: Count
    peer_id: Short


class MirrorResult(_Model):
    """``download --all``: what was queued (in order), what was skipped and why it stopped."""

    kind: Literal["mirror"] = "mirror"
    message: Text
    queued: list[MirrorEntry]
    stopped_at: MirrorEntry | None = None  # the first game that did not fit on disk
    order: Short = "smallest first"


class DoctorResult(_Model):
    kind: Literal["doctor"] = "doctor"
    checks: list[DoctorCheck]


class UiResult(_Model):
    """Where the web UI is; ``url`` carries the token (the control socket is 0600, so may)."""

    kind: Literal["ui"] = "ui"
    url: Text | None  # None when the web UI is off or could not listen
    message: Text


class ShareDownloadEntry(_Model):
    """One download from the HTTP share: a browser or download manager, by client address."""

    client: Short  # the client's IP address
    game_id: GameId
    item: Text  # "<id>.zip" or the path of one file
    offset: Count = 0  # where this response starts in the item (a resumed download)
    bytes_sent: Count = 0
    bytes_total: Count = 0  # of this response
    rate: Annotated[float, Field(ge=0)] = 0.0  # bytes/s since it started
    started: float = 0.0  # seconds since the epoch


class ShareResult(_Model):
    kind: Literal["share"] = "share"
    enabled: bool  # False unless lanpeerd runs with --http-share
    url: Text | None = None  # the page; with a party key, Basic auth (any user) is needed
    link: Text | None = None  # the page with the link token (shareable, no password prompt)
    downloads: list[ShareDownloadEntry] = Field(default_factory=list)


Result = Annotated[
    StatusResult
    | PeersResult
    | GamesResult
    | OpsResult
    | AcceptedResult
    | DoctorResult
    | MirrorResult
    | UploadsResult
    | GameResult
    | UiResult
    | ShareResult,
    Field(discriminator="kind"),
]

# ---------------------------------------------------------------- events (JSON lines of §9)


class PeerUpEvent(_Model):
    event: Literal["peer_up"] = "peer_up"
    peer_id: Short
    name: Short = ""
    address: Short = ""


class PeerDownEvent(_Model):
    event: Literal["peer_down"] = "peer_down"
    peer_id: Short


class LibraryChangedEvent(_Model):
    event: Literal["library_changed"] = "library_changed"
    peer_id: Short | None = None  # None: our own library
    library_rev: Count


class ProgressEvent(_Model):
    event: Literal["progress"] = "progress"
    game_id: GameId
    kind: Short
    state: Short
    bytes_done: Count
    bytes_total: Count
    rate: Annotated[float, Field(ge=0)] = 0.0
    eta: Annotated[float, Field(ge=0)] | None = None
    peer_rates: dict[Short, float] = Field(default_factory=dict)
    reason: Text | None = None  # why a stalled operation waits
    hashing: HashingInfo | None = None  # stalled until a seeder has hashed the game


class FinishedEvent(_Model):
    """The last line of a waited operation."""

    event: Literal["finished"] = "finished"
    game_id: GameId
    kind: Short = "download"
    ok: bool
    error: Text | None = None
    error_code: ControlErrorCode | None = None
    bytes: Count = 0
    seconds: Annotated[float, Field(ge=0)] = 0.0
    peers_used: list[Short] = Field(default_factory=list)
    bytes_from_partial: Count = 0  # of the fetched bytes: served by other downloaders
    bytes_by_peer: dict[Short, Count] = Field(default_factory=dict)  # fetched bytes per peer
    bytes_fetched: Count = 0  # of ``bytes``, what crossed the network (the rest: delta copies)


class UploadEvent(_Model):
    """A peer started or finished pulling a game from this host."""

    event: Literal["upload"] = "upload"
    state: Literal["started", "finished"]
    peer_id: Short
    name: Short = ""
    game_id: GameId
    bytes: Count = 0
    seconds: Annotated[float, Field(ge=0)] = 0.0


class KeepEvent(_Model):
    """The keep list changed (SPEC §9a): a game pinned or unpinned, a peer followed or not.

    ``pin`` / ``unpin`` carry ``game_id`` and ``version`` (the pinned one, or the one the pin
    held); ``follow`` / ``unfollow`` carry ``peer_id`` (in full), its ``name`` and, for
    ``follow``, ``install`` (whether its games are installed after the download).
    """

    event: Literal["keep"] = "keep"
    action: Literal["pin", "unpin", "follow", "unfollow"]
    game_id: GameId | None = None
    version: Short | None = None
    peer_id: Short | None = None
    name: Short = ""
    install: bool | None = None


Event = Annotated[
    PeerUpEvent
    | PeerDownEvent
    | LibraryChangedEvent
    | ProgressEvent
    | FinishedEvent
    | UploadEvent
    | KeepEvent,
    Field(discriminator="event"),
]

# ---------------------------------------------------------------- server lines (daemon -> client)


class ResultMessage(_Model):
    type: Literal["result"] = "result"
    result: Result


class ErrorMessage(_Model):
    type: Literal["error"] = "error"
    code: ControlErrorCode
    message: Text

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.code]


class EventMessage(_Model):
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
