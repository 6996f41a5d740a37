"""Shared vocabulary of the control protocol: field types, the base model, error codes.

Owns ``CONTROL_VERSION``, the constrained field types every control model uses, ``ControlModel``
(frozen, ignores unknown fields) and ``ControlErrorCode`` with its peer-cli exit codes. Sans-IO:
no socket, no asyncio, no clock. The requests, views and events modules build on this one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from lanpeer_proto.paths import GAME_ID_RE

CONTROL_VERSION = 1

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


class ControlModel(BaseModel):
    """Base of every control model: frozen; unknown fields ignored (newer peers add some)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
