"""Control requests, peer-cli -> lanpeerd: one model per command, selected by ``cmd``.

Owns every ``*Request`` model, the ``Request`` union and ``TRANSACTION_REQUESTS``. Sans-IO; the
line codec in ``lanpeer_proto.control`` decodes these, and nothing here reads or writes bytes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from lanpeer_proto.control_types import CONTROL_VERSION, ControlModel, GameId, PeerName, Short


class _Request(ControlModel):
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
