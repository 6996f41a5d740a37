"""Which bytes an HTTP GET gets: the whole body, one range, or 416 (RFC 9110 §13.1.5, §14).

Owns the Range / If-Range decision as a pure function of the two header values, our ETag and
the body size. Never reads a socket. aiohttp's ``request.http_range`` parses the same syntax but
neither clamps nor tells "unsatisfiable" from "malformed", which is the whole decision here.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

_UNIT_RE = re.compile(r"^\s*bytes\s*=(.*)$", re.IGNORECASE | re.ASCII | re.DOTALL)
_SPEC_RE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$", re.ASCII)
#: Ranges answered as one multipart/byteranges body; more (or overlapping ones, a known
#: amplification trick, RFC 9110 §14.2) get the whole body instead.
MAX_RANGES = 8


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
class Parts:
    """Several ascending, disjoint ranges: 206 with a multipart/byteranges body."""

    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Unsatisfiable:
    """The range starts past the end (416 with Content-Range ``*/size``)."""


Choice = Whole | Part | Parts | Unsatisfiable


def choose_range(range_header: str | None, if_range: str | None, etag: str, size: int) -> Choice:
    """What to send for a GET of a body of ``size`` bytes whose strong ETag is ``etag``.

    An If-Range that is not exactly our ETag (an old ETag, a weak one, a date: we send no
    Last-Modified) means the client's partial copy is of other bytes: the whole new body, never a
    mix. A Range we cannot parse, more than ``MAX_RANGES`` ranges or overlapping ones are
    ignored as RFC 9110 allows (200). Ranges past the end are dropped; if none is left, 416.
    """
    if range_header is None:
        return Whole()
    if if_range is not None and if_range.strip() != etag:
        return Whole()
    unit = _UNIT_RE.match(range_header)
    specs = unit.group(1).split(",") if unit else []
    if not specs or len(specs) > MAX_RANGES:
        return Whole()
    parts: list[Part] = []
    for spec in specs:
        part = _one_range(spec, size)
        if part is None:
            return Whole()
        if isinstance(part, Part):
            parts.append(part)
    if not parts:
        return Unsatisfiable()
    if any(a.end > b.start for a, b in itertools.pairwise(parts)):
        return Whole()  # overlapping or out of order
    return parts[0] if len(parts) == 1 else Parts(tuple(parts))


def _one_range(spec: str, size: int) -> Part | Unsatisfiable | None:
    """One ``first-last`` spec: the part, unsatisfiable, or None when it is invalid."""
    match = _SPEC_RE.match(spec)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # "-N": the last N bytes
        suffix = int(last)
        return Part(max(0, size - suffix), size) if suffix and size else Unsatisfiable()
    start = int(first)
    end = size if not last else int(last) + 1
    if last and end <= start:
        return None  # "9-3" is invalid, not unsatisfiable
    if start >= size:
        return Unsatisfiable()
    return Part(start, min(end, size))
