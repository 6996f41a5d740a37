"""``Daemon``: composes library, net, downloads, installs and the control socket (SPEC §10).

Owns the startup order (instance lock and socket bind, install recovery, library, identity and
peer node, the operation queue with downloads and installs, resumed downloads, then serving the
control socket), the one task group, and the graceful stop (Goodbye to peers, state persisted by
each part's close). Never implements a part itself; a part that fails to start stops the daemon
with its error.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from typing import Literal

from lanpeer_proto.control import ErrorMessage, LibraryChangedEvent, Request, ResultMessage

from lanpeer.config import DaemonConfig
from lanpeer.control import views
from lanpeer.control.commands import ControlCommands
from lanpeer.control.events import EventHub
from lanpeer.control.resume import resume_downloads
from lanpeer.control.server import ControlSocket
from lanpeer.download import DownloadManager
from lanpeer.download.operations import Lane, OperationQueue
from lanpeer.errors import LanpeerError, ShuttingDownError
from lanpeer.install import recover_root
from lanpeer.installs import InstallRunner
from lanpeer.library import GameLibrary
from lanpeer.library.diagnose import library_problems
from lanpeer.locks import LockFile
from lanpeer.net.identity import Identity
from lanpeer.net.node import PeerNode
from lanpeer.net.peers import PeerEvent
from lanpeer.parts import Parts
from lanpeer.ratelimit import TokenBucket
from lanpeer.share.server import ShareServer

log = logging.getLogger(__name__)

# One transaction at a time: installs are disk-bound, and two extractions on one disk are
# slower together than one after the other.
GENERAL_LANES = 1


class Daemon:
    """One lanpeerd: ``await Daemon(config).run()`` until ``stop()`` or a signal."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.events = EventHub()
        self._stopping = asyncio.Event()
        self._commands: ControlCommands | None = None  # once every part has started
        # One upload cap for peers and the HTTP share alike.
        limit = config.max_upload
        self._upload_limiter = TokenBucket(limit) if limit is not None else None
        self.control = ControlSocket(config.socket, self._answer, self.events)

    def stop(self) -> None:
        if not self._stopping.is_set():
            log.info("shutting down")
        self._stopping.set()

    async def run(self) -> None:
        self.control.bind()  # first: a second instance must refuse before touching anything
        state_lock = LockFile(
            self.config.state / "lanpeerd.lock",
            f"already uses the state dir {self.config.state} (its identity and index); "
            "give this one its own --state",
        )
        try:
            self.config.state.mkdir(parents=True, exist_ok=True)
            state_lock.take()
            async with AsyncExitStack() as stack:
                parts = await self._start_parts(stack)
                self._commands = ControlCommands(parts, self.stop)
                await self._serve(parts)
        finally:
            self._commands = None
            state_lock.release()
            self.control.close()
        log.info("stopped")

    async def _answer(self, request: Request) -> ResultMessage | ErrorMessage:
        """The control socket serves only once the parts run (see ``_serve``)."""
        if self._commands is None:
            raise ShuttingDownError("lanpeerd is not running its parts (starting or stopping)")
        return await self._commands.answer(request)

    async def _serve(self, parts: Parts) -> None:
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self.control.serve()),
                group.create_task(parts.downloads.run()),
            ]
            if parts.share is not None:
                tasks.append(group.create_task(parts.share.run()))
            log.info("lanpeerd %s ready (control socket %s)", self.config.name, self.config.socket)
            stopping = group.create_task(self._stopping.wait())
            await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()

    async def _start_parts(self, stack: AsyncExitStack) -> Parts:
        self._recover_installs()
        library = await self._start_library(stack)
        identity = Identity.load_or_create(self.config.state)
        node = await self._start_node(stack, identity, library)
        queue = OperationQueue(
            {Lane.DOWNLOAD: self.config.download_lanes, Lane.GENERAL: GENERAL_LANES}
        )
        queue.add_listener(lambda event: self.events.publish(views.download_event(event)))
        installs = InstallRunner(library, queue)
        downloads = DownloadManager(
            library,
            node,
            offers=node,
            queue=queue,
            max_download=self.config.max_download,
            installer=installs.after_download,
        )  # runs in our task group (see _serve)
        share = await self._start_share(stack, library)
        parts = Parts(self.config, self.events, library, identity, node, downloads, installs, share)
        # Downloads a previous run left staged continue on their own (SPEC §7: resume).
        resume_downloads(downloads, node)
        return parts

    def _recover_installs(self) -> None:
        for root in self.config.games:
            if root.is_dir():
                recover_root(root)  # logs what it changed, and nothing when all is well
            else:
                log.warning("game root %s is missing; it is skipped until it appears", root)

    async def _start_library(self, stack: AsyncExitStack) -> GameLibrary:
        library = GameLibrary(
            list(self.config.games), self.config.state, catalog_path=self.config.catalog
        )
        await stack.enter_async_context(library)
        roots, catalog = list(self.config.games), library.catalog_path
        for problem in await asyncio.to_thread(library_problems, roots, catalog):
            log.warning("%s", problem)  # once at start; `peer-cli doctor` lists them any time
        library.add_listener(
            lambda rev: self.events.publish(LibraryChangedEvent(library_rev=int(rev)))
        )
        return library

    async def _start_node(
        self, stack: AsyncExitStack, identity: Identity, library: GameLibrary
    ) -> PeerNode:
        # build_config accepts only these two (config.py checks; its field is a plain str).
        bulk: Literal["auto", "quic"] = "quic" if self.config.bulk == "quic" else "auto"
        node = PeerNode(
            identity,
            library,
            name=self.config.name,
            bind=self.config.bind,
            port=self.config.port,
            static_peers=list(self.config.peers),
            mdns=self.config.mdns,
            party_key=self.config.party_key,
            bulk=bulk,
            upload_limiter=self._upload_limiter,
        )
        try:
            await stack.enter_async_context(node)
        except OSError as exc:
            raise LanpeerError(
                f"cannot listen on {self.config.bind}:{self.config.port}: {exc.strerror}; "
                "another lanpeerd or program may use that port: pick one with --port"
            ) from exc

        def on_peer_event(event: PeerEvent) -> None:
            control_event = views.peer_event(event, node.peers())
            if control_event is not None:
                self.events.publish(control_event)

        node.add_listener(on_peer_event)
        node.uploads.add_listener(
            lambda notice, session: self.events.publish(
                views.upload_event(notice, session, node.uploads.names(session.peer_id))
            )
        )
        return node

    async def _start_share(self, stack: AsyncExitStack, library: GameLibrary) -> ShareServer | None:
        if self.config.http_share is None:
            return None  # off by default (SPEC §9c)
        host, port = self.config.http_share
        server = ShareServer(
            library, host, port, name=self.config.name, party_key=self.config.party_key,
            limiter=self._upload_limiter,
        )  # fmt: skip
        try:
            return await stack.enter_async_context(server)
        except OSError as exc:
            raise LanpeerError(
                f"cannot serve the HTTP share on {host}:{port}: {exc.strerror}; "
                "pick a free address with --http-share ADDR:PORT"
            ) from exc
