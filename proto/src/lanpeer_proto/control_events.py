"""Control events, lanpeerd -> peer-cli: the JSON event lines streamed after ``watch``/``--wait``.

Owns every ``*Event`` model and the ``Event`` union selected by ``event``. Sans-IO data only.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from lanpeer_proto.control_types import ControlErrorCode, ControlModel, Count, GameId, Short, Text
from lanpeer_proto.control_views import HashingInfo


class PeerUpEvent(ControlModel):
    event: Literal["peer_up"] = "peer_up"
    peer_id: Short
    name: Short = ""
    address: Short = ""


class PeerDownEvent(ControlModel):
    event: Literal["peer_down"] = "peer_down"
    peer_id: Short


class LibraryChangedEvent(ControlModel):
    event: Literal["library_changed"] = "library_changed"
    peer_id: Short | None = None  # None: our own library
    library_rev: Count


class ProgressEvent(ControlModel):
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


class FinishedEvent(ControlModel):
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


class UploadEvent(ControlModel):
    """A peer started or finished pulling a game from this host."""

    event: Literal["upload"] = "upload"
    state: Literal["started", "finished"]
    peer_id: Short
    name: Short = ""
    game_id: GameId
    bytes: Count = 0
    seconds: Annotated[float, Field(ge=0)] = 0.0


class KeepEvent(ControlModel):
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
