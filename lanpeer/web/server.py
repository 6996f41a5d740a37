"""``WebUI``: the web UI's aiohttp server inside the daemon's own event loop (SPEC §9b).

Owns the one module that owns aiohttp's server: routes, limits, the listening site and the
throughput sampler. Binding runs while the daemon starts its parts; a port already taken is a
logged warning and the daemon runs on without its web UI (``peer-cli ui`` says so). Never a
second process or thread, never a CORS header, never a route that skips ``AccessGuard``.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import TracebackType

from aiohttp import web
from lanpeer_proto.control import (
    OpsRequest,
    OpsResult,
    ResultMessage,
    UploadsRequest,
    UploadsResult,
)

from lanpeer.control.events import EventHub
from lanpeer.control.server import Answer
from lanpeer.library import GameLibrary
from lanpeer.web.access import AccessGuard, Handler, load_or_create_token
from lanpeer.web.api import WebApi
from lanpeer.web.live import SAMPLE_EVERY, LiveChannel, Throughput

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# A command is one short JSON line, as on the control socket (MAX_REQUEST_LINE).
MAX_BODY = 64 << 10
# Requests in flight at once (the live channel is capped apart): a page makes a handful, so
# 64 is generous and bounds what a looping script on this host can make the daemon hold.
MAX_REQUESTS = 64
# Idle keep-alive connections are closed after this long (browsers reconnect for free).
KEEPALIVE = 15.0
# On shutdown, requests still running get this long (tabs are closed first, see on_shutdown).
SHUTDOWN_GRACE = 2.0


class WebUI:
    """``async with WebUI(...)`` binds; ``run()`` samples throughput until cancelled."""

    def __init__(
        self,
        address: tuple[str, int],
        state: Path,
        answer: Answer,
        events: EventHub,
        library: GameLibrary,
        *,
        max_requests: int = MAX_REQUESTS,
    ) -> None:
        self.address = address
        self._state = state
        self._answer = answer
        self.throughput = Throughput()
        self.api = WebApi(answer, self.throughput, library)
        self.live = LiveChannel(events, self.api.snapshot, self.throughput)
        self._requests = asyncio.Semaphore(max_requests)
        self._runner: web.AppRunner | None = None
        self._token = ""
        self.problem: str | None = "the web UI has not started"  # None once listening

    @property
    def url(self) -> str | None:
        """The address to open, without the token; None when not listening."""
        if self.problem is not None:
            return None
        host, port = self.address
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"

    @property
    def url_with_token(self) -> str | None:
        return None if self.url is None else f"{self.url}?token={self._token}"

    async def __aenter__(self) -> WebUI:
        self._token = load_or_create_token(self._state)
        app = self._app()
        runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=KEEPALIVE, shutdown_timeout=SHUTDOWN_GRACE
        )
        await runner.setup()
        host, port = self.address
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            self.problem = f"cannot listen on {host}:{port}: {exc.strerror}"
            log.warning(
                "web UI: %s; lanpeerd runs on without it (another lanpeerd may have it: "
                "pick an address with --web ADDR:PORT, or --no-web)",
                self.problem,
            )
            return self
        self._runner = runner
        self.problem = None
        if host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("web UI on %s:%s is reachable from the network (--web-public)", host, port)
        log.info("web UI on %s (open it with `peer-cli ui`)", self.url)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def run(self) -> None:
        """Sample the host's throughput for the graph, until cancelled."""
        while True:
            await asyncio.sleep(SAMPLE_EVERY)
            ops, uploads = await self.api.ask(OpsRequest()), await self.api.ask(UploadsRequest())
            if not isinstance(ops, ResultMessage) or not isinstance(ops.result, OpsResult):
                continue
            down = sum(op.rate for op in ops.result.ops if op.finished_at is None)
            up = None  # the daemon does not measure what it sends: no line, never a fake 0
            if isinstance(uploads, ResultMessage) and isinstance(uploads.result, UploadsResult):
                up = sum(upload.rate for upload in uploads.result.uploads)
            self.throughput.add(down, up)

    def _app(self) -> web.Application:
        guard = AccessGuard(self._token, self.address[1])
        app = web.Application(
            middlewares=[self._bounded, guard.middleware], client_max_size=MAX_BODY
        )
        app.router.add_get("/", _index)
        app.router.add_static("/static/", STATIC)
        app.router.add_get("/api/state", self.api.state)
        app.router.add_get("/api/doctor", self.api.doctor)
        app.router.add_post("/api/command", self.api.command)
        app.router.add_get("/api/cover/{game_id}", self.api.cover)
        app.router.add_get("/api/live", self.live.handle)
        app.on_shutdown.append(lambda _app: self.live.close_all())
        return app

    @web.middleware
    async def _bounded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/api/live":
            return await handler(request)  # capped by LiveChannel itself; runs for hours
        if self._requests.locked():
            return web.Response(status=503, text=f"more than {MAX_REQUESTS} requests at once\n")
        async with self._requests:
            return await handler(request)


async def _index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})
