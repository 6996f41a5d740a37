"""Which bytes an HTTP GET gets: the whole body, one range, or 416 (RFC 9110 §13.1.5, §14).

Owns the Range / If-Range decision as a pure function of the two header values, our ETag and
the body size. Never reads a socket. aiohttp's ``request.http_range`` parses the same syntax but
neither clamps nor tells "unsatisfiable" from "malformed", which is the whole decision here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class Whole:
    """Send everything (200): no Range, an If-Range that no longer matches, or a Range we skip."""


@dataclass(frozen=True)
class Part:
    """Send bytes ``[start, end)`` (206 with Content-Range ``start-(end-1)/size``)."""

    start: int
    end: int

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


@dataclass(frozen=True)
class Unsatisfiable:
    """The range starts past the end (416 with Content-Range ``*/size``)."""


Choice = Whole | Part | Unsatisfiable


def choose_range(range_header: str | None, if_range: str | None, etag: str, size: int) -> Choice:
    """What to send for a GET of a body of ``size`` bytes whose strong ETag is ``etag``.

    An If-Range that is not exactly our ETag (an old ETag, a weak one, a date: we send no
    Last-Modified) means the client's partial copy is of other bytes: the whole new body, never a
    mix. Several ranges, or a Range we cannot parse, are ignored as RFC 9110 allows (200).
    """
    if range_header is None:
        return Whole()
    if if_range is not None and if_range.strip() != etag:
        return Whole()
    match = _RANGE_RE.match(range_header)
    if match is None:
        return Whole()
    first, last = match.groups()
    if not first and not last:
        return Whole()
    if not first:  # "bytes=-N": the last N bytes
        suffix = int(last)
        return Part(max(0, size - suffix), size) if suffix and size else Unsatisfiable()
    start = int(first)
    end = size if not last else int(last) + 1
    if last and end <= start:
        return Whole()  # "bytes=9-3" is invalid, not unsatisfiable
    if start >= size:
        return Unsatisfiable()
    return Part(start, min(end, size))
