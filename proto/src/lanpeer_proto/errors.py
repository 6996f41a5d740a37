"""Errors of the lanpeer wire protocol.

Owns the one exception hierarchy of ``lanpeer_proto`` and the wire error codes.
Every failure to parse remote bytes is a ``RemoteProtocolError``; every attempt
to send something invalid is a ``LocalProtocolError``. Nothing else escapes.

Compatibility rule for codes: a minor protocol version may add codes, never rename or
remove one; a code we do not know decodes as ``INTERNAL`` (see ``messages.Error``).
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Codes carried by ``Error`` messages and by protocol exceptions."""

    BAD_FRAME = "bad_frame"  # framing broken or frame over the size limit
    BAD_MESSAGE = "bad_message"  # not msgpack, or not a valid message
    UNKNOWN_TYPE = "unknown_type"  # valid envelope, message type we do not know
    UNEXPECTED = "unexpected"  # valid message in the wrong session state
    UNSUPPORTED_VERSION = "unsupported_version"
    AUTH_FAILED = "auth_failed"  # peer_id proof failed
    PARTY_KEY = "party_key"  # party key missing or wrong
    TIMEOUT = "timeout"
    NOT_FOUND = "not_found"  # game, file or manifest unknown
    BUSY = "busy"  # game has an operation active / not downloaded
    BAD_PATH = "bad_path"  # hostile or invalid relative path
    BAD_RANGE = "bad_range"  # offset/length outside the file or chunk size
    STALE_MANIFEST = "stale_manifest"  # manifest_hash no longer served
    TOO_MANY = "too_many"  # a per-peer cap was hit
    BAD_TOKEN = "bad_token"  # bulk path token unknown, used or expired
    INTERNAL = "internal"


class ProtocolError(Exception):
    """Base of every protocol failure. Not raised directly."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.BAD_MESSAGE) -> None:
        if type(self) is ProtocolError:
            raise TypeError("raise LocalProtocolError or RemoteProtocolError")
        super().__init__(message)
        self.code = code
        self.message = message


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids."""
