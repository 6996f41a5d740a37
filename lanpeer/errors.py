"""The daemon's error hierarchy. Other libraries' exceptions are translated at glue boundaries.

Each error says what failed, why, and what to do, for the person at the terminal.
``control_code`` is the control protocol's error code the error line carries (its peer-cli exit
code comes from the one table, ``lanpeer_proto.control.EXIT_CODES``); ``code`` is the finer
reason an operation records (``disk_full``, ``no_sources``...).
"""

from __future__ import annotations

from typing import ClassVar

from lanpeer_proto.control import ControlErrorCode


class LanpeerError(Exception):
    """Base of every daemon error: the operation ran and failed."""

    control_code: ClassVar[ControlErrorCode] = ControlErrorCode.FAILED
    code: ClassVar[str] = "failed"


class UnknownGameError(LanpeerError):
    control_code = ControlErrorCode.UNKNOWN_GAME
    code = "unknown_game"


class UnknownPeerError(LanpeerError):
    control_code = ControlErrorCode.UNKNOWN_PEER
    code = "unknown_peer"


class ConflictError(LanpeerError):
    """An operation is already active for that game, or the game is busy."""

    control_code = ControlErrorCode.CONFLICT
    code = "conflict"


class DiskFullError(LanpeerError):
    code = "disk_full"


class UnsafeArchiveError(LanpeerError):
    code = "unsafe_archive"


class TransactionAborted(LanpeerError):
    code = "transaction_aborted"


class EncryptedArchiveError(UnsafeArchiveError):
    """An archive entry is encrypted; lanpeer never asks for or guesses passphrases."""

    code = "encrypted_archive"


class ArchiveBombError(UnsafeArchiveError):
    """Unpacked bytes, ratio, entry count or depth went past the extraction limits."""

    code = "archive_bomb"


class BadArchiveError(LanpeerError):
    """An archive could not be read: unknown format, truncated or failing its checksums."""

    code = "bad_archive"


class ShuttingDownError(LanpeerError):
    """The daemon is starting or stopping its parts and answers no command now."""

    control_code = ControlErrorCode.SHUTTING_DOWN
    code = "shutting_down"


class AlreadyRunningError(LanpeerError):
    """Another lanpeerd holds the control socket's lock."""

    code = "already_running"


class InstallCancelled(LanpeerError):
    """An install or update was cancelled during extraction and rolled back."""

    code = "cancelled"
