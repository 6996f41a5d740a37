"""PeerNode: the peer network as one object the daemon starts and stops.

Owns the composition (QUIC listener, bulk listener, the ``Dialler`` of static peers and mDNS
adverts, sessions, peer table, library sync, stale sweeping) and the public surface: peers(),
listeners, fetches and the download engine's source directory. Never blocks the loop on disk or
hashing and never lets one peer's failure stop the node: every task logs and ends on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from lanpeer_proto.messages import (
    HashStatus,
    Hello,
    LibrarySummary,
    Manifest,
    Message,
)
from lanpeer_proto.session import SessionTimers
from lanpeer_proto.version import (
    FEATURE_DELTAS,
    FEATURE_HASH_STATUS,
    FEATURE_SWARM,
    FEATURE_TCP_BULK,
    PROTOCOL_MAJOR,
    PROTOCOL_MINOR,
)

from lanpeer.net.bulk import BulkLimits, BulkSecrets, BulkServer
from lanpeer.net.dialling import Dialler, MdnsStatus
from lanpeer.net.errors import HandshakeRefused, ListenError
from lanpeer.net.fetching import PeerChunkSource, PeerFetcher
from lanpeer.net.handshake import (
    ControlChannel,
    RemoteFacts,
    client_channel,
    server_channel,
    wait_handshake,
)
from lanpeer.net.identity import Identity, short_id
from lanpeer.net.library_view import HashStatusSource, LibraryView
from lanpeer.net.peers import MAX_LIBRARY_RECORDS, PeerEvent, PeerEventKind, PeerInfo, PeerTable
from lanpeer.net.quic import (
    QuicListener,
    QuicPeerConnection,
    QuicSettings,
    QuicStream,
    dial,
    listen,
)
from lanpeer.net.responder import Responder
from lanpeer.net.serving import Limiter, UploadSlots
from lanpeer.net.session import PeerLink, SessionLimits
from lanpeer.net.static_peers import StaticPeer
from lanpeer.net.swarm import SwarmHost, SwarmLimits, SwarmView
from lanpeer.net.sync import LibrarySync
from lanpeer.net.uploads import UploadLedger
from lanpeer.tasks import wait_first

log = logging.getLogger(__name__)

DEFAULT_PORT = 47600
#: Handshake must finish in this time or the connection is dropped.
HANDSHAKE_TIMEOUT = 10.0


@dataclass(frozen=True)
class NodeTimings:
    """Time limits of the node; tests shrink them."""

    #: A peer with no session and no message for this long is removed from the table.
    stale_timeout: float = 60.0
    #: Static peers are redialled after failures with backoff between these bounds.
    redial_min: float = 0.5
    redial_max: float = 15.0
    #: Library changes are pushed this long after the first one, coalescing bursts.
    push_debounce: float = 0.2
    #: Of two peers that see each other's advert, the one with the larger peer_id waits this
    #: long for the other to dial, so a pair usually shares one connection.
    dial_yield: float = 2.0


class PeerNode:
    def __init__(
        self,
        identity: Identity,
        library: LibraryView,
        *,
        name: str,
        bind: str = "0.0.0.0",
        port: int = DEFAULT_PORT,
        static_peers: Iterable[tuple[str, int]] = (),
        mdns: bool = True,
        party_key: str | None = None,
        bulk: Literal["auto", "quic"] = "auto",
        upload_limiter: Limiter | None = None,
        timings: NodeTimings | None = None,
        quic_settings: QuicSettings | None = None,
        session_limits: SessionLimits | None = None,
        session_timers: SessionTimers | None = None,
        max_uploads_per_peer: int = 8,
        advertise_addresses: list[str] | None = None,
        swarm: bool = True,
        swarm_limits: SwarmLimits | None = None,
        bulk_limits: BulkLimits | None = None,
        max_library_records: int | None = None,
    ) -> None:
        self.identity = identity
        self.library = library
        self.name = name
        self._bind, self._port = bind, port
        self._mdns = mdns
        self._party_key = party_key or None
        self._bulk_mode = bulk
        self.timings = timings or NodeTimings()
        self._quic_settings = quic_settings or QuicSettings()
        self._limits = session_limits or SessionLimits()
        self._timers = session_timers or SessionTimers()
        self._advertise = advertise_addresses
        self._bulk_limits = bulk_limits
        self._table = PeerTable(max_library_records or MAX_LIBRARY_RECORDS)
        self._sync = LibrarySync(self._table, self._emit)
        self._uploads = UploadSlots(max_uploads_per_peer, UploadLedger(names=self._peer_name))
        self.uploads = self._uploads.ledger  # who pulls what from us (peer-cli uploads)
        self._tokens = BulkSecrets(identity.peer_id) if bulk == "auto" else None
        self._bulk_server: BulkServer | None = None
        self._fetcher = PeerFetcher(self._table, identity.peer_id, bulk, max_uploads_per_peer)
        # SPEC §7a: our downloads in progress serve what they verified (off: --no-swarm).
        self.swarm = SwarmHost(self._table, self._fetcher, self, serve=swarm, limits=swarm_limits)
        self._served = SwarmView(library, self.swarm)  # what the QUIC and bulk paths read
        self._upload_limiter = upload_limiter
        self._hashing = library if isinstance(library, HashStatusSource) else None
        self._responder: Responder | None = None  # built once the listeners are bound
        self._listeners: list[Callable[[PeerEvent], None]] = []
        self._sources_changed = asyncio.Event()  # replaced (after set) on every peer event
        self._tasks: set[asyncio.Task[None]] = set()
        self._group: asyncio.TaskGroup | None = None
        self._quic: QuicListener | None = None
        self._conns: set[QuicPeerConnection] = set()
        self._dialler = Dialler(identity.peer_id, self._table, self.timings, static_peers,
                                self._spawn, self._dial_and_run)  # fmt: skip
        self._push_pending = False
        self.listen: tuple[str, int] = (bind, port)

    # lifecycle ---------------------------------------------------------------
    async def __aenter__(self) -> PeerNode:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Bind the listeners and start every task; on failure everything opened is closed."""
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()
        try:
            await self._open_listeners()
        except BaseException:
            await self.aclose()
            raise
        self.library.add_listener(self._library_changed)
        self._spawn(self._sweep_stale())
        self._spawn(self.uploads.run_sweeps())
        if self._mdns:
            self._dialler.start_discovery(self.name, self._advertise, self._bind, self.listen[1],
                                          self.library.library_rev)  # fmt: skip
        self._dialler.start_static()
        log.info("peer %s (%s) listening on %s:%d", short_id(self.identity.peer_id), self.name,
                 *self.listen)  # fmt: skip

    async def _open_listeners(self) -> None:
        try:
            self._quic = await listen(self.identity, self._bind, self._port, self._quic_settings,
                                      self._accepted)  # fmt: skip
        except OSError as exc:
            raise ListenError(
                f"cannot listen on UDP {self._bind}:{self._port}: {exc.strerror or exc}; "
                "is another lanpeerd running? pick another --port"
            ) from exc
        self.listen = self._quic.address
        bulk_port = self._open_bulk(self._tokens) if self._tokens is not None else None
        self._responder = Responder(self._served, self._uploads, self._tokens, bulk_port,
                                    self._upload_limiter, self.swarm, self._hashing)  # fmt: skip

    def _open_bulk(self, tokens: BulkSecrets) -> int:
        bulk = BulkServer(self._served, tokens, self._uploads, self._upload_limiter,
                          self._bulk_limits)  # fmt: skip
        try:  # the same port number on TCP when free: one number to allow in a firewall
            port = bulk.open(self._bind, self.listen[1])
        except OSError:
            port = bulk.open(self._bind, 0)
        self._bulk_server = bulk
        self._spawn(bulk.serve())
        return port

    async def aclose(self) -> None:
        """Goodbye to every peer, stop every task, close every socket."""
        if self._group is None:
            return
        self.uploads.end_all()  # each says how it went, in the log and as an event
        sessions = [s for r in self._table.records() for s in r.sessions if s.is_open]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await asyncio.gather(*(s.say_goodbye("shutting down") for s in sessions))
        self._close_connections()
        for task in list(self._tasks):
            task.cancel()
        group, self._group = self._group, None
        await group.__aexit__(None, None, None)
        if self._quic is not None:
            self._quic.close()
        if self._bulk_server is not None:
            self._bulk_server.close()
        self._fetcher.close()

    def _close_connections(self) -> None:
        """CONNECTION_CLOSE to every peer, then drop the sockets without QUIC's draining wait."""
        for conn in list(self._conns):
            conn.close_connection("shutting down")
            conn.force_close()
        self._conns.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._group is None:
            coro.close()
            return
        task = self._group.create_task(_logged(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _task: coro.close())  # cancelled before it ever ran

    def _started_responder(self) -> Responder:
        if self._responder is None:
            raise ConnectionError("the peer node is not started")
        return self._responder

    # public surface (static peers and mDNS: see Dialler) ------------------------
    @property
    def bulk_port(self) -> int | None:
        """The TCP bulk listener's port; None with ``bulk="quic"`` or before ``start``."""
        return self._responder.bulk_port if self._responder is not None else None

    def peers(self) -> list[PeerInfo]:
        return [record.info() for record in self._table.records()]

    def _peer_name(self, peer_id: str) -> str:
        record = self._table.get(peer_id)
        return str(record.name) if record is not None else ""

    def mdns_status(self) -> MdnsStatus:
        return self._dialler.mdns_status()

    def add_listener(self, cb: Callable[[PeerEvent], None]) -> None:
        self._listeners.append(cb)

    def add_static_peer(self, host: str, port: int) -> StaticPeer:
        return self._dialler.add_static_peer(host, port)

    def remove_static_peer(self, host: str, port: int) -> StaticPeer | None:
        return self._dialler.remove_static_peer(host, port)

    def static_peers(self) -> list[StaticPeer]:
        return self._dialler.static_peers()

    async def wait_static_outcome(self, static: StaticPeer) -> str | None:
        """None once ``static`` is connected, else its next dial error (callers bound the wait)."""
        while not self._dialler.connected_at(static.host, static.port):
            if 1 in await wait_first(self._sources_changed.wait(), static.attempted.wait()):
                return static.error
        return None

    async def fetch_manifest(
        self, peer_id: str, game_id: str, manifest_hash: bytes | None = None
    ) -> Manifest:
        """The peer's manifest of ``game_id`` that is ``manifest_hash`` (default: the one it
        advertises), checked against that hash and its content (``PeerFetcher.manifest``)."""
        return await self._fetcher.manifest(peer_id, game_id, manifest_hash)

    async def fetch_hash_status(self, peer_id: str, game_id: str) -> HashStatus | None:
        """How far the peer's hashing of ``game_id`` has got; None when it cannot say (a peer
        without feature hash-status/1). Raises PeerUnavailable/ChunkRefused."""
        return await self._fetcher.hash_status(peer_id, game_id)

    async def fetch_chunk(
        self, peer_id: str, game_id: str, manifest_hash: bytes, path: str, offset: int, length: int
    ) -> bytes:
        """Chunk bytes over the bulk path when both sides offer it, else over QUIC.

        The caller verifies the bytes against the manifest; raises PeerUnavailable/ChunkRefused.
        """
        source = PeerChunkSource(self._fetcher, peer_id)
        return await source.fetch_chunk(game_id, manifest_hash, path, offset, length)

    def sources_for(self, game_id: str, manifest_hash: bytes) -> list[PeerChunkSource]:
        """Connected peers advertising exactly this content (the download engine's sources)."""
        sources = []
        for record in self._table.records():
            game = record.games.get(game_id)
            if record.connected and game is not None and game.manifest_hash == manifest_hash:
                sources.append(PeerChunkSource(self._fetcher, record.peer_id))
        return sources

    async def wait_sources_changed(self, timeout: float) -> None:  # noqa: ASYNC109 - seam
        """Return when a peer comes, goes or changes its library after this call, or on timeout."""
        changed = self._sources_changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await changed.wait()

    # events --------------------------------------------------------------------
    def _emit(self, kind: PeerEventKind, peer_id: str) -> None:
        self._sources_changed.set()
        self._sources_changed = asyncio.Event()
        record = self._table.get(peer_id)
        event = (
            PeerEvent(kind, peer_id, record.name, record.address, record.library_rev or 0)
            if record is not None
            else PeerEvent(kind, peer_id)
        )
        for cb in list(self._listeners):
            try:
                cb(event)
            except Exception:
                log.exception("peer event listener failed on %s", event)

    # connections ---------------------------------------------------------------
    def _hello(self) -> Hello:
        return Hello(
            peer_id=self.identity.peer_id,
            public_key=self.identity.public_key,
            name=self.name,
            proto_major=PROTOCOL_MAJOR,
            proto_minor=PROTOCOL_MINOR,
            listen_port=self.listen[1],
            library_rev=self.library.library_rev,
            library_digest=self.library.library_digest,
            features=self._features(),
        )

    def _features(self) -> list[str]:
        bulk = [FEATURE_TCP_BULK] if self._tokens is not None else []
        hashing = [FEATURE_HASH_STATUS] if self._hashing is not None else []
        return [FEATURE_DELTAS, FEATURE_SWARM, *bulk, *hashing]

    def _accepted(self, conn: QuicPeerConnection) -> None:
        """A TLS handshake finished on our listener: its first stream is the control stream."""
        self._conns.add(conn)
        conn.when_ended(self._conns.discard)

        def first_stream(stream: QuicStream) -> None:
            conn.on_stream = None  # later streams wait for the session (PeerLink.run)
            self._spawn(self._serve_incoming(conn, stream))

        conn.on_stream = first_stream

    async def _serve_incoming(self, conn: QuicPeerConnection, control: QuicStream) -> None:
        try:
            channel = server_channel(control, self._hello(), self._party_key,
                                     self._started_responder().bulk_port,
                                     self._timers)  # fmt: skip
            facts, _ = await wait_handshake(channel)
        except (HandshakeRefused, ConnectionError) as exc:
            log.warning("refused peer at %s: %s", conn.remote_address[0], exc)
            with contextlib.suppress(TimeoutError):  # let the Error frame reach the peer
                async with asyncio.timeout(1.0):
                    await conn.wait_ended()
            conn.close_connection(str(exc))
            return
        conn.mark_authenticated()
        address = (conn.remote_address[0], facts.listen_port)  # never the QUIC source port
        await self._run_link(conn, channel, facts, address, dialled=False)

    async def _dial_and_run(
        self, host: str, port: int, expected_id: str | None, static: StaticPeer | None = None
    ) -> None:
        conn = await dial(host, port, self._quic_settings, HANDSHAKE_TIMEOUT)
        self._conns.add(conn)
        conn.when_ended(self._closed_dialled)
        try:
            channel = client_channel(conn, conn.open_stream(), self.identity, self._hello(),
                                     self._party_key, expected_id, self._timers)  # fmt: skip
            facts, _bulk_port = await wait_handshake(channel)
        except BaseException as exc:
            conn.close_connection(str(exc) or "handshake failed")
            raise
        conn.mark_authenticated()
        if static is not None:
            static.connected()
        await self._run_link(conn, channel, facts, (host, port), dialled=True)

    def _closed_dialled(self, conn: QuicPeerConnection) -> None:
        self._conns.discard(conn)
        conn.force_close()

    async def _run_link(
        self, conn: QuicPeerConnection, channel: ControlChannel, facts: RemoteFacts,
        address: tuple[str, int], *, dialled: bool,
    ) -> None:  # fmt: skip
        answer = self._started_responder().answer
        link = PeerLink(conn, channel, facts, address, self._limits, answer,
                        self._control_message, dialled=dialled)  # fmt: skip
        if not self._keep_one_connection(link):
            return
        log.info("peer %s (%s) connected from %s:%d", short_id(facts.peer_id), facts.name,
                 *address)  # fmt: skip
        if self._table.session_up(link, facts, address):
            self._emit(PeerEventKind.UP, facts.peer_id)
        self._spawn(
            self._sync.wait_synced(link, facts.library_rev, facts.library_digest, hello=True)
        )
        if channel.sent_library_digest != self.library.library_digest:
            # Our library changed after the Hello was built; a push made meanwhile skipped
            # this session (not ready yet), so this peer hears of it now.
            self._spawn(link.push(self._summary()))
        try:
            await link.run()
        finally:
            self._table.touch(facts.peer_id, link.last_seen)
            if self._table.session_down(link):
                if self._bulk_server is not None:
                    self._bulk_server.drop_peer(facts.peer_id)
                self._fetcher.link_down(facts.peer_id)
                log.info("peer %s disconnected", short_id(facts.peer_id))
                self._emit(PeerEventKind.DOWN, facts.peer_id)

    def _keep_one_connection(self, link: PeerLink) -> bool:
        """One connection per pair: when two peers dialled each other, both sides keep the one
        the smaller peer_id dialled and close the other. False when ``link`` is the one closed.

        A newer connection from the same dialer (a reconnect) replaces the old as before.
        """
        record = self._table.get(link.peer_id)
        other = record.live_session() if record is not None else None
        if other is None or other.dialled == link.dialled:
            return True
        kept = link if self._dialler_of(link) < self._dialler_of(other) else other
        dropped = other if kept is link else link
        log.debug("%r: closing a duplicate connection to the same peer", dropped)
        dropped.conn.close_connection("duplicate connection")
        return kept is link

    def _dialler_of(self, link: PeerLink) -> str:
        return self.identity.peer_id if link.dialled else link.peer_id

    def _control_message(self, session: PeerLink, message: Message) -> None:
        if isinstance(message, LibrarySummary):
            self._spawn(
                self._sync.wait_synced(session, message.library_rev, message.library_digest)
            )
        else:
            log.info("%r: ignoring %s on the control stream", session, message.type)

    # library changes and staleness ------------------------------------------------
    def _library_changed(self, rev: int) -> None:
        if not self._push_pending:
            self._push_pending = True
            self._spawn(self._push_summary())

    async def _push_summary(self) -> None:
        await asyncio.sleep(self.timings.push_debounce)  # coalesce a burst of changes
        self._push_pending = False
        summary = self._summary()
        sessions = [s for r in self._table.records() for s in r.sessions if s.is_open]
        await asyncio.gather(*(s.push(summary) for s in sessions))
        if self._dialler.discovery is not None:
            await self._dialler.discovery.update_rev(summary.library_rev)

    def _summary(self) -> LibrarySummary:
        return LibrarySummary(
            library_rev=self.library.library_rev,
            library_digest=self.library.library_digest,
            game_count=min(len(self.library.snapshot()), 10_000),
        )

    async def _sweep_stale(self) -> None:
        interval = max(0.05, self.timings.stale_timeout / 4)
        while True:
            await asyncio.sleep(interval)
            for peer_id in self._table.expire(time.monotonic(), self.timings.stale_timeout):
                log.info("peer %s removed: not seen for %.0f s", short_id(peer_id),
                         self.timings.stale_timeout)  # fmt: skip
                self._fetcher.forget(peer_id)
                self._emit(PeerEventKind.REMOVED, peer_id)


async def _logged(coro: Coroutine[Any, Any, None]) -> None:
    """Task boundary: a failure is logged, never propagated to the node's task group."""
    try:
        await coro
    except Exception:
        log.exception("peer network task failed")
