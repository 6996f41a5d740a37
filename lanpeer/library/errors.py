"""Errors of the library: refusals to serve a file, and a catalog that cannot be read.

Owns the translation of "why this file cannot be served" into a wire ``ErrorCode``.
Never carries a traceback or a host path to a remote peer: messages are written for peers.
"""

from __future__ import annotations

from lanpeer_proto.errors import ErrorCode

from lanpeer.errors import LanpeerError


class ServeRefused(LanpeerError):
    """A peer asked for something this host does not serve; ``wire_code`` goes on the wire."""

    code = "serve_refused"

    def __init__(self, wire_code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.wire_code = wire_code
        self.message = message


class CatalogError(LanpeerError):
    """The catalog file cannot be read or written; the previous catalog stays in force."""

    code = "catalog"
