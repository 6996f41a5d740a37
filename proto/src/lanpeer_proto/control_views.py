"""Control answers, lanpeerd -> peer-cli: the stable JSON documents of SPEC §9 and their results.

Owns the view models (``OperationInfo``, ``GameEntry``, ``PeerEntry`` ...), every ``*Result``
and the ``Result`` union selected by ``kind``. Sans-IO data only: the daemon fills them from its
state, peer-cli and the web UI render them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from lanpeer_proto.control_types import CONTROL_VERSION, ControlModel, Count, GameId, Short, Text


class HashingInfo(ControlModel):
    """A download waiting for a seeder to hash the game: how far that seeder has got (SPEC §9a
    ``hashing``; the seeder furthest along when several hash it)."""

    peer_id: Short
    name: Short = ""
    hashed_bytes: Count
    total_bytes: Count
    queued: bool = False  # that host hashes other games first; this one has not started


class OperationInfo(ControlModel):
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


class PeerEntry(ControlModel):
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
    # Smoothed QUIC round trip of the live session; None: not connected or not measured yet.
    rtt_ms: Annotated[float, Field(ge=0)] | None = None


class SourceEntry(ControlModel):
    """One peer offering a game (SPEC §9a ``games.sources``)."""

    peer_id: Short
    version: Short
    manifest_hash: Short | None = None  # hex; None while that peer still hashes it
    partial: bool = False  # a swarm source holding only part of it
    # Of a partial source: what its last have-set said it holds (None: a full copy).
    held_chunks: Count | None = None
    held_bytes: Count | None = None


class VariantEntry(ControlModel):
    """Peers holding different bytes under one version string (SPEC §9a ``games.variants``)."""

    version: Short
    manifest_hash: Short
    peers: list[Short]
    size: Count = 0  # bytes of that content


class GameEntry(ControlModel):
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


class UploadEntry(ControlModel):
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


class DoctorCheck(ControlModel):
    """One check of ``doctor``: what was looked at, what was found, what to do."""

    name: Short
    status: Literal["ok", "warn", "fail", "info"]
    summary: Text
    hint: Text | None = None


class StatusResult(ControlModel):
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


class PeersResult(ControlModel):
    kind: Literal["peers"] = "peers"
    peers: list[PeerEntry]


class GamesResult(ControlModel):
    kind: Literal["games"] = "games"
    games: list[GameEntry]


class OpsResult(ControlModel):
    kind: Literal["ops"] = "ops"
    ops: list[OperationInfo]


class GameResult(ControlModel):
    """One game in full (SPEC §9a ``game GAME``)."""

    kind: Literal["game"] = "game"
    game: GameEntry
    path: Text | None = None  # its dir on this host
    operation: OperationInfo | None = None  # queued or running now
    history: list[OperationInfo] = Field(default_factory=list)  # finished, oldest first
    pin: Short | None = None  # a pinned version (none: follows the newest)


class UploadsResult(ControlModel):
    kind: Literal["uploads"] = "uploads"
    uploads: list[UploadEntry]
    total_bytes: Count = 0  # uploaded since the daemon started


class AcceptedResult(ControlModel):
    """A command that was accepted: an operation queued, a rescan started, a peer dialled."""

    kind: Literal["accepted"] = "accepted"
    message: Text
    game_id: GameId | None = None
    operation: OperationInfo | None = None


class MirrorEntry(ControlModel):
    game_id: GameId
    version: Short
    size: Count
    peer_id: Short


class MirrorResult(ControlModel):
    """``download --all``: what was queued (in order), what was skipped and why it stopped."""

    kind: Literal["mirror"] = "mirror"
    message: Text
    queued: list[MirrorEntry]
    stopped_at: MirrorEntry | None = None  # the first game that did not fit on disk
    order: Short = "smallest first"


class DoctorResult(ControlModel):
    kind: Literal["doctor"] = "doctor"
    checks: list[DoctorCheck]


class UiResult(ControlModel):
    """Where the web UI is; ``url`` carries the token (the control socket is 0600, so may)."""

    kind: Literal["ui"] = "ui"
    url: Text | None  # None when the web UI is off or could not listen
    message: Text


class ShareDownloadEntry(ControlModel):
    """One download from the HTTP share: a browser or download manager, by client address."""

    client: Short  # the client's IP address
    game_id: GameId
    item: Text  # "<id>.zip" or the path of one file
    offset: Count = 0  # where this response starts in the item (a resumed download)
    bytes_sent: Count = 0
    bytes_total: Count = 0  # of this response
    rate: Annotated[float, Field(ge=0)] = 0.0  # bytes/s since it started
    started: float = 0.0  # seconds since the epoch


class ShareResult(ControlModel):
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
