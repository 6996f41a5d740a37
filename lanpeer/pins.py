"""Pins and follows: what this host keeps as it is, and whose library it mirrors (SPEC §9a).

Owns ``KeepList``, persisted as ``<state>/keep.json`` (tmp + fsync + rename + dir fsync, like
the intent log), so pins and follows survive restarts. Never decides what to download: the
auto-updater and the mirror read it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

KEEP_FILE = "keep.json"
FORMAT = 1
# A pin per game and a follow per peer: both bounded by what a party has (SPEC §1: up to 1,000
# games and 200 hosts); a file past these is refused rather than read into memory.
MAX_PINS = 4096
MAX_FOLLOWS = 1024


@dataclass
class KeepList:
    """Pins (game -> version) and followed peers (peer id -> install after download)."""

    path: Path
    pins: dict[str, str] = field(default_factory=dict)
    follows: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def load(cls, state_dir: Path) -> KeepList:
        path = state_dir / KEEP_FILE
        try:
            data = json.loads(path.read_text())
            pins = {str(k): str(v) for k, v in dict(data.get("pins", {})).items()}
            follows = {str(k): bool(v) for k, v in dict(data.get("follows", {})).items()}
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            # Never lose it silently: keep the bad file aside and say so.
            aside = path.with_suffix(".json.bad")
            os.replace(path, aside)
            log.warning("%s could not be read (%s); moved to %s, no pins", path, exc, aside)
            return cls(path)
        if len(pins) > MAX_PINS or len(follows) > MAX_FOLLOWS:
            log.warning("%s holds more pins or follows than allowed; ignored", path)
            return cls(path)
        return cls(path, pins, follows)

    def pin(self, game_id: str, version: str) -> None:
        if game_id not in self.pins and len(self.pins) >= MAX_PINS:
            raise ValueError(f"at most {MAX_PINS} pins")
        self.pins[game_id] = version
        self._save()

    def unpin(self, game_id: str) -> str | None:
        version = self.pins.pop(game_id, None)
        self._save()
        return version

    def follow(self, peer_id: str, install: bool) -> None:
        if peer_id not in self.follows and len(self.follows) >= MAX_FOLLOWS:
            raise ValueError(f"at most {MAX_FOLLOWS} followed peers")
        self.follows[peer_id] = install
        self._save()

    def unfollow(self, peer_id: str) -> bool:
        present = self.follows.pop(peer_id, None) is not None
        self._save()
        return present

    def _save(self) -> None:
        doc = {"format": FORMAT, "pins": self.pins, "follows": self.follows}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        with tmp.open("w") as stream:
            json.dump(doc, stream, indent=1, sort_keys=True)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, self.path)
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
