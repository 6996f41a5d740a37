"""Recorder fakes of the daemon parts ``ControlCommands`` reads: each call is appended to one
shared, ordered ``actions`` list, so a test asserts exactly what a command did and in what order.

Written like the parts they stand for: the same method names and return types (real
``LocalGame``, ``PeerInfo``, ``GameSummary``, ``Manifest`` and ``Operation`` values).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from lanpeer_proto.messages import GameSummary, HashStatus, Manifest

from lanpeer.config import DaemonConfig
from lanpeer.control.commands import ControlCommands
from lanpeer.control.events import EventHub
from lanpeer.control.keepstep import KeepInStep
from lanpeer.download.operations import Lane, Operation, OperationQueue, OpKind
from lanpeer.download.progress import OperationStatus
from lanpeer.library.state import LocalGame
from lanpeer.net.dialling import MdnsStatus
from lanpeer.net.peers import PeerInfo
from lanpeer.net.static_peers import StaticPeer
from lanpeer.net.swarm_member import PartialHolder
from lanpeer.net.uploads import UploadLedger
from lanpeer.parts import Parts
from lanpeer.pins import KeepList

ROOT = Path("/games")


def local_game(game_id: str, *, downloaded: bool = True, installed: bool = False) -> LocalGame:
    return LocalGame(
        id=game_id, name=game_id.title(), version="1.0" if downloaded else None,
        downloaded=downloaded, installed=installed, local_only=False, size=10, root=ROOT,
        path=ROOT / game_id, manifest_hash=b"m" * 32, hashed_bytes=0, hash_total=0,
        in_catalog=True, busy=False, root_available=True,
    )  # fmt: skip


def summary(game_id: str, version: str, manifest_hash: bytes | None = b"h" * 32) -> GameSummary:
    return GameSummary(id=game_id, name=game_id.title(), version=version,
                       manifest_hash=manifest_hash, size=10)  # fmt: skip


def peer(
    peer_id: str, *games: GameSummary, connected: bool = True, rtt: float | None = None
) -> PeerInfo:
    return PeerInfo(peer_id, f"host-{peer_id}", ("10.0.0.2", 47600), "1.0", 3, 0.0,
                    {g.id: g for g in games}, connected, rtt)  # fmt: skip


def manifest(game_id: str) -> Manifest:
    return Manifest(game_id=game_id, version="1.0", manifest_hash=b"h" * 32, files=[])


async def _never_run(_op: Operation) -> None:
    raise AssertionError("a recorder's operation is never run")


@dataclass
class Recorder:
    actions: list[str] = field(default_factory=list)
    queue: OperationQueue = field(
        default_factory=lambda: OperationQueue({Lane.DOWNLOAD: 2, Lane.GENERAL: 1})
    )

    def op(self, game_id: str, kind: OpKind) -> Operation:
        return self.queue.submit(game_id, kind, _never_run)


class FakeLibrary:
    def __init__(self, rec: Recorder, games: list[LocalGame]) -> None:
        self.rec, self.games = rec, games
        self.roots = [ROOT]
        self.library_rev = 7

    def local_games(self) -> list[LocalGame]:
        return list(self.games)

    async def rescan(self, game_id: str | None = None) -> None:
        self.rec.actions.append(f"library.rescan {game_id}")


class FakeSwarm:
    """``SwarmHost`` as the control views read it: the partial sources our downloads see."""

    def __init__(self) -> None:
        self.holders: list[PartialHolder] = []

    def partial_holders(self) -> list[PartialHolder]:
        return list(self.holders)


class FakeNode:
    def __init__(self, rec: Recorder, peers: list[PeerInfo]) -> None:
        self.rec, self._peers = rec, peers
        self.listen = ("0.0.0.0", 47600)
        self.after_wait: list[PeerInfo] | None = None  # the peers once sources changed
        self.dial_error: str | None = None  # what the first dial of a static peer says
        self.uploads = UploadLedger()  # real: nothing uploads in these tests
        #: What each peer answers to GetHashStatus, one answer per ask (the last one repeats);
        #: a peer absent here cannot say (no feature hash-status/1).
        self.hash_statuses: dict[str, list[HashStatus]] = {}
        self.swarm = FakeSwarm()

    def peers(self) -> list[PeerInfo]:
        return list(self._peers)

    async def fetch_manifest(
        self, peer_id: str, game_id: str, manifest_hash: bytes | None = None
    ) -> Manifest:
        self.rec.actions.append(f"node.fetch_manifest {peer_id} {game_id}")
        return manifest(game_id)

    async def fetch_hash_status(self, peer_id: str, game_id: str) -> HashStatus | None:
        self.rec.actions.append(f"node.fetch_hash_status {peer_id} {game_id}")
        answers = self.hash_statuses.get(peer_id)
        if not answers:
            return None
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async def wait_sources_changed(self, timeout: float) -> None:  # noqa: ASYNC109 - seam
        self.rec.actions.append("node.wait_sources_changed")
        if self.after_wait is not None:
            self._peers = [replace(p) for p in self.after_wait]

    def add_static_peer(self, host: str, port: int) -> StaticPeer:
        self.rec.actions.append(f"node.add_static_peer {host} {port}")
        return StaticPeer(host, port)

    async def wait_static_outcome(self, static: StaticPeer) -> str | None:
        self.rec.actions.append(f"node.wait_static_outcome {static.host} {static.port}")
        return self.dial_error

    def mdns_status(self) -> MdnsStatus:
        return MdnsStatus(running=False, own_advert_seen=False, advertised_for=None)


class FakeDownloads:
    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.running: dict[str, Operation] = {}

    def current(self, game_id: str) -> Operation | None:
        return self.running.get(game_id)

    def operations(self) -> list[OperationStatus]:
        return [op.status(None) for op in self.running.values()]

    def submit_when_offered(
        self, game_id: str, find: object, then_install: bool = False, pin: str | None = None
    ) -> Operation:
        self.rec.actions.append(f"downloads.submit_when_offered {game_id} install={then_install}")
        self.running[game_id] = op = self.rec.op(game_id, OpKind.DOWNLOAD)
        return op

    def submit_download(
        self,
        game_id: str,
        manifest: Manifest,
        then_install: bool = False,
        *,
        summary: GameSummary | None = None,
        pin: str | None = None,
        chosen: bool = False,
    ) -> Operation:
        version = summary.version if summary else None
        self.rec.actions.append(f"downloads.submit {game_id} {version} install={then_install}")
        self.running[game_id] = op = self.rec.op(game_id, OpKind.DOWNLOAD)
        return op

    async def cancel(self, game_id: str) -> bool:
        self.rec.actions.append(f"downloads.cancel {game_id}")
        return self.running.pop(game_id, None) is not None


class FakeInstalls:
    def __init__(self, rec: Recorder, downloads: FakeDownloads) -> None:
        self.rec, self.downloads = rec, downloads

    def submit(self, kind: OpKind, game_id: str) -> Operation:
        self.rec.actions.append(f"installs.submit {kind} {game_id}")
        self.downloads.running[game_id] = op = self.rec.op(game_id, kind)
        return op


@dataclass
class Daemon:
    """ControlCommands over recorder parts, and what it did."""

    commands: ControlCommands
    rec: Recorder
    library: FakeLibrary
    node: FakeNode
    downloads: FakeDownloads
    stops: list[str]


def build(games: list[LocalGame], peers: list[PeerInfo]) -> Daemon:
    rec = Recorder()
    library, node, downloads = FakeLibrary(rec, games), FakeNode(rec, peers), FakeDownloads(rec)
    installs = FakeInstalls(rec, downloads)
    config = DaemonConfig(games=[ROOT], name="alpha", mdns=False)
    identity = type("Identity", (), {"peer_id": "ME"})()
    events = EventHub()
    keep = KeepInStep(
        library, node, downloads, events, KeepList(ROOT / "keep.json"), "off",  # type: ignore[arg-type]
        lambda game_id: installs.submit(OpKind.UPDATE, game_id),
    )  # fmt: skip
    parts = Parts(config, events, library, identity, node, downloads, installs, keep)  # type: ignore[arg-type]
    stops: list[str] = []
    commands = ControlCommands(parts, lambda: stops.append("stop"))
    return Daemon(commands, rec, library, node, downloads, stops)
