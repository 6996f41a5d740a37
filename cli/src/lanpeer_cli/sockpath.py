"""Where peer-cli finds lanpeerd's control socket when ``--socket`` is not given.

Stdlib and ``lanpeer_proto.paths`` only: the quick road (``entry``) needs it without pydantic.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from lanpeer_proto.paths import default_socket_path


def default_socket() -> Path:
    """The same path lanpeerd uses when neither side is given --socket."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and not _private_dir(runtime):
        runtime = None
    return Path(default_socket_path(runtime, os.getuid(), tempfile.gettempdir()))


def _private_dir(path: str) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o700
