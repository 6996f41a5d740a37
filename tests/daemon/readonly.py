"""A real lanpeerd whose game root is read-only: a bind mount inside its own mount namespace.

``unshare -m --propagation private`` keeps the mount invisible to the rest of the machine and
gone when the daemon exits; needs root (skip otherwise).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import pytest

from tests.daemon.harness import Lanpeerd

CAN_MOUNT = os.geteuid() == 0 and shutil.which("unshare") is not None
needs_mount = pytest.mark.skipif(not CAN_MOUNT, reason="needs root and unshare for a ro mount")

_WRAP = 'mount --bind -o ro "$0" "$0" && exec "$@"'


@dataclass
class ReadOnlyRootLanpeerd(Lanpeerd):
    def argv(self) -> list[str]:
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", _WRAP, str(self.games),
                *super().argv()]  # fmt: skip
