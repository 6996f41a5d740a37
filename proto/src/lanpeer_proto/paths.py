"""Rules for names that cross the wire: game ids and relative file paths (SPEC §3, §4).

Pure functions; the daemon applies the same rules on disk. A path is refused,
never rewritten: a peer that sends ``a/../b`` gets an error, not ``b``.
"""

from __future__ import annotations

import re

GAME_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

#: Names inside a game dir that are never served (SPEC §3).
RESERVED_NAMES = frozenset(
    {
        "local",
        ".local.installing",
        ".local.backup",
        ".lanpeer.json",
        ".lanpeer.part",
        ".version.ini.tmp",
        ".softlan_game_installed",
        ".sync",
        ".lanpeer_owned",
        ".lanpeer.installed",  # the version.ini that local/ came from
        ".lanpeer.installed.tmp",
    }
)

#: Long enough for real game trees, short enough to bound memory per message.
MAX_PATH_LENGTH = 1024
MAX_PATH_DEPTH = 32
MAX_COMPONENT_LENGTH = 255

_DRIVE_RE = re.compile(r"^[A-Za-z]:")


def is_game_id(value: str) -> bool:
    return GAME_ID_RE.fullmatch(value) is not None


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a safe relative path of a served file, or None if it is."""
    if not path:
        return "empty path"
    if len(path) > MAX_PATH_LENGTH:
        return "path too long"
    if "\x00" in path:
        return "NUL byte in path"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return "control character in path"
    if "\\" in path:
        return "backslash in path"
    if path.startswith("/"):
        return "absolute path"
    if _DRIVE_RE.match(path):
        return "drive letter in path"
    parts = path.split("/")
    if len(parts) > MAX_PATH_DEPTH:
        return "path too deep"
    for part in parts:
        if part in ("", ".", ".."):
            return f"path component {part!r} not allowed"
        if len(part) > MAX_COMPONENT_LENGTH:
            return "path component too long"
    if parts[0] in RESERVED_NAMES:
        return f"reserved name {parts[0]!r}"
    return None


SOCKET_NAME = "control.sock"


def default_socket_path(runtime_dir: str | None, uid: int, tmp_dir: str) -> str:
    """Where daemon and client meet when ``--socket`` is not given.

    ``runtime_dir`` is ``$XDG_RUNTIME_DIR`` when it is set, owned by the user and mode 0700
    (callers check; this module reads no environment). Otherwise a per-uid dir in ``tmp_dir``,
    which the daemon creates 0700 and refuses to use if someone else owns it.
    """
    base = f"{runtime_dir}/lanpeer" if runtime_dir else f"{tmp_dir}/lanpeer-{uid}"
    return f"{base}/{SOCKET_NAME}"
