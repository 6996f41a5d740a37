"""``Parts``: the daemon's composition root, every running part with its real type (SPEC §10).

Built once by ``Daemon`` after every part has started; frozen. Command handlers take what they
need from it; nothing here starts, stops or looks a part up by name.
"""

from __future__ import annotations

from dataclasses import dataclass

from lanpeer.config import DaemonConfig
from lanpeer.control.events import EventHub
from lanpeer.download import DownloadManager
from lanpeer.installs import InstallRunner
from lanpeer.library import GameLibrary
from lanpeer.net.identity import Identity
from lanpeer.net.node import PeerNode
from lanpeer.share.server import ShareServer


@dataclass(frozen=True)
class Parts:
    config: DaemonConfig
    events: EventHub
    library: GameLibrary
    identity: Identity
    node: PeerNode
    downloads: DownloadManager
    installs: InstallRunner
    share: ShareServer | None = None  # only with --http-share (SPEC §9c)
