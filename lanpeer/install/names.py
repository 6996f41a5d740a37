"""Rules for names inside an archive: which entry paths may be created under staging.

Pure functions. A hostile name is refused, never rewritten (zipfile turns ``../x`` into ``x``;
lanpeer refuses the archive instead). Never touches the filesystem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
#: Names Windows cannot create; the games are Windows games run through compat layers.
_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)
#: Linux NAME_MAX is 255 bytes; PATH_MAX is 4096.
MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 4096


def entry_name_problem(name: str, max_depth: int) -> str | None:
    """Why an archive entry ``name`` is unsafe, or None. A single trailing ``/`` is allowed."""
    if not name:
        return "empty name"
    if len(name.encode()) > MAX_PATH_BYTES:
        return "name too long"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "NUL or control character in name"
    if "\\" in name:
        return "backslash in name"
    if name.startswith("/"):
        return "absolute path"
    if _DRIVE_RE.match(name):
        return "drive letter in name"
    parts = split_entry_name(name)
    if len(parts) > max_depth:
        return f"deeper than {max_depth} levels"
    return next(filter(None, map(_component_problem, parts)), None)


def split_entry_name(name: str) -> list[str]:
    return (name[:-1] if name.endswith("/") else name).split("/")


def _component_problem(part: str) -> str | None:
    if part in ("", ".", ".."):
        return f"path component {part!r} not allowed"
    if len(part.encode()) > MAX_COMPONENT_BYTES:
        return "path component too long"
    if part.endswith((".", " ")):
        return f"component {part!r} ends with a dot or space"
    if part.split(".", 1)[0].lower() in _WINDOWS_RESERVED:
        return f"reserved Windows name {part!r}"
    return None


@dataclass
class NameRegistry:
    """Names already created by one extraction, to refuse duplicates and case collisions."""

    seen: dict[str, tuple[str, bool]] = field(default_factory=dict)

    def claim(self, parts: list[str], is_dir: bool) -> str | None:
        """Record an entry (and its parent directories); return a problem or None."""
        for depth in range(1, len(parts)):
            problem = self._claim_one("/".join(parts[:depth]), True)
            if problem:
                return problem
        return self._claim_one("/".join(parts), is_dir)

    def _claim_one(self, path: str, is_dir: bool) -> str | None:
        previous = self.seen.get(path.casefold())
        if previous is None:
            self.seen[path.casefold()] = (path, is_dir)
            return None
        if previous[0] != path:
            return f"{path!r} collides with {previous[0]!r} on case-insensitive systems"
        if previous[1] != is_dir:
            return f"{path!r} is both a file and a directory"
        return None if is_dir else f"duplicate entry {path!r}"
