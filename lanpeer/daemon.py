"""``Daemon``: composes library, net, downloads, installs and the control socket (SPEC §10).

Owns the startup order (instance lock and socket bind, install recovery, library, identity and
peer node, downloads, resumed downloads, then serving the control socket), the one task group,
and the graceful stop (Goodbye to peers, state persisted by each part's close). Never implements
a part itself.
A part that is not built into this tree is reported as missing and its commands answer
``not_available``; a part that is built in but fails to start stops the daemon with its error.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from lanpeer_proto.control import LibraryChangedEvent

from lanpeer.config import DaemonConfig
from lanpeer.control import views
from lanpeer.control.commands import ControlCommands, Parts, run_in_thread
from lanpeer.control.events import EventHub
from lanpeer.control.server import ControlSocket
from lanpeer.errors import LanpeerError
from lanpeer.library.diagnose import library_problems
from lanpeer.locks import LockFile

log = logging.getLogger(__name__)


def import_part(parts: Parts, name: str, module: str) -> ModuleType | None:
    """The part's package, or None (recorded in ``parts.missing``) when it is not built yet."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module.startswith(exc.name):
            raise  # the part exists but one of its own imports is broken: a real error
        parts.missing[name] = f"{module} is not built into this lanpeer yet"
        log.warning("%s: not available (%s missing)", name, module)
        return None


class Daemon:
    """One lanpeerd: ``await Daemon(config).run()`` until ``stop()`` or a signal."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self.events = EventHub()
        self.parts = Parts(config=config, events=self.events)
        self._stopping = asyncio.Event()
        self.commands = ControlCommands(self.parts, self.stop)
        self.control = ControlSocket(config.socket, self.commands.answer, self.events)

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
                await self._start_parts(stack)
                await self._serve()
        finally:
            state_lock.release()
            self.control.close()
        log.info("stopped")

    async def _serve(self) -> None:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self.control.serve())]
            if self.parts.downloads is not None:
                tasks.append(group.create_task(self.parts.downloads.run()))
            if self.parts.keep is not None:
                tasks.append(group.create_task(self.parts.keep.run()))
            log.info("lanpeerd %s ready (control socket %s)", self.config.name, self.config.socket)
            stopping = group.create_task(self._stopping.wait())
            await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()

    async def _start_parts(self, stack: AsyncExitStack) -> None:
        self._recover_installs()
        await self._start_library(stack)
        await self._start_net(stack)
        await self._start_downloads(stack)

    def _recover_installs(self) -> None:
        install = import_part(self.parts, "install", "lanpeer.install")
        if install is None:
            return
        self.parts.install = install
        for root in self.config.games:
            if root.is_dir():
                install.recover_root(root)  # logs what it changed, and nothing when all is well
            else:
                log.warning("game root %s is missing; it is skipped until it appears", root)

    async def _start_library(self, stack: AsyncExitStack) -> None:
        module = import_part(self.parts, "library", "lanpeer.library")
        if module is None:
            return
        library = module.GameLibrary(
            list(self.config.games), self.config.state, catalog_path=self.config.catalog
        )
        self.parts.library = await stack.enter_async_context(library)
        roots, catalog = list(self.config.games), library.catalog_path
        for problem in await asyncio.to_thread(library_problems, roots, catalog):
            log.warning("%s", problem)  # once at start; `peer-cli doctor` lists them any time
        library.add_listener(
            lambda rev: self.events.publish(LibraryChangedEvent(library_rev=int(rev)))
        )

    async def _start_net(self, stack: AsyncExitStack) -> None:
        net = import_part(self.parts, "node", "lanpeer.net.node")
        if net is None or self.parts.library is None:
            if net is not None:
                self.parts.missing["node"] = "the peer node needs the library part"
            return
        self.parts.identity = importlib.import_module(
            "lanpeer.net.identity"
        ).Identity.load_or_create(self.config.state)
        node = net.PeerNode(
            self.parts.identity,
            self.parts.library,
            name=self.config.name,
            bind=self.config.bind,
            port=self.config.port,
            static_peers=list(self.config.peers),
            mdns=self.config.mdns,
            party_key=self.config.party_key,
            bulk=self.config.bulk,
            upload_limiter=_limiter(self.config.max_upload),
        )
        try:
            self.parts.node = await stack.enter_async_context(node)
        except OSError as exc:
            raise LanpeerError(
                f"cannot listen on {self.config.bind}:{self.config.port}: {exc.strerror}; "
                "another lanpeerd or program may use that port: pick one with --port"
            ) from exc
        node.add_listener(self._on_peer_event)
        node.uploads.add_listener(
            lambda notice, session: self.events.publish(
                views.upload_event(notice, session, node.uploads.names(session.peer_id))
            )
        )

    async def _start_downloads(self, stack: AsyncExitStack) -> None:
        module = import_part(self.parts, "downloads", "lanpeer.download")
        if module is None or self.parts.node is None:
            if module is not None:
                self.parts.missing["downloads"] = "downloads need the library and net parts"
            return
        downloads = module.DownloadManager(
            self.parts.library,
            self.parts.node,
            download_lanes=self.config.download_lanes,
            max_download=self.config.max_download,
            installer=self._install_downloaded if self.parts.install else None,
        )
        self.parts.downloads = downloads  # runs in our task group (see _serve)
        downloads.add_listener(lambda event: self.events.publish(views.download_event(event)))
        # Downloads a previous run left staged continue on their own (SPEC §7: resume).
        importlib.import_module("lanpeer.control.resume").resume_downloads(self.parts)
        self._start_keep()

    def _start_keep(self) -> None:
        """Auto-update, pins and follows (runs in our task group, hears peer events)."""
        keepstep = importlib.import_module("lanpeer.control.keepstep")
        keep = importlib.import_module("lanpeer.pins").KeepList.load(self.config.state)
        parts = self.parts
        parts.keep = keepstep.KeepInStep(
            parts.library, parts.node, parts.downloads, self.events, keep,
            self.config.auto_update, self._submit_update,
        )  # fmt: skip
        parts.node.add_listener(parts.keep.on_peer_event)

    def _submit_update(self, game_id: str) -> Any:
        """Queue the update transaction of a game (auto-update, after its download)."""
        install = self.parts.need("install")
        game_dir = Path(self.parts.library.game_dir(game_id))

        async def job() -> None:
            async with self.parts.library.operation(game_id):
                await run_in_thread(partial(install.update_game, game_dir), game_id,
                                    cancellable=True)  # fmt: skip

        return self.parts.downloads.submit_job(game_id, "update", job)

    def _on_peer_event(self, event: Any) -> None:
        control_event = views.peer_event(event, self.parts.node.peers())
        if control_event is not None:
            self.events.publish(control_event)

    async def _install_downloaded(self, game_id: str, game_dir: Path) -> None:
        """After a download: install, or update when local/ is already there."""
        install = self.parts.need("install")
        run = install.update_game if (game_dir / "local").is_dir() else install.install_game
        async with self.parts.library.operation(game_id):
            await run_in_thread(partial(run, game_dir), game_id, cancellable=True)


def _limiter(rate: int | None) -> Any:
    if rate is None:
        return None
    ratelimit = importlib.import_module("lanpeer.ratelimit")
    return ratelimit.TokenBucket(rate)
