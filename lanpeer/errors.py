"""The daemon's error hierarchy. Other libraries' exceptions are translated at glue boundaries.

Each error says what failed, why, and what to do, for the person at the terminal.
``exit_code`` is the peer-cli exit code of SPEC §9 the error maps to.
"""

from __future__ import annotations


class LanpeerError(Exception):
    """Base of every daemon error; maps to peer-cli exit code 1 (operation failed)."""

    exit_code = 1
    code = "failed"


class UnknownGameError(LanpeerError):
    exit_code = 4
    code = "unknown_game"


class UnknownPeerError(LanpeerError):
    exit_code = 4
    code = "unknown_peer"


class ConflictError(LanpeerError):
    """An operation is already active for that game, or the game is busy."""

    exit_code = 5
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


class NotAvailableError(LanpeerError):
    """The daemon part that would serve a command is not running in this build or config."""

    code = "not_available"


class AlreadyRunningError(LanpeerError):
    """Another lanpeerd holds the control socket's lock."""

    code = "already_running"


class InstallCancelled(LanpeerError):
    """An install or update was cancelled during extraction and rolled back."""

    code = "cancelled"
