"""``ShareServer``: the opt-in HTTP share (SPEC §9c), an aiohttp app on its own address.

Owns the routes (the games page, a game's files page, ``/games/<id>.zip``, single files), the
party-key gate on every route (``access`` decides), the download slots per client address and
in total, and the table of who is downloading what. Serving rules are the
library's (catalog only, no ``local/``, reserved names or symlinks): every file is opened with
``open_served_file``. Never serves a byte without the key when one is set, and never builds an
archive: ``zipmap`` computes where every byte comes from.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote

import blake3
from aiohttp import web
from lanpeer_proto.errors import ErrorCode
from lanpeer_proto.messages import GameSummary, Manifest
from lanpeer_proto.paths import is_game_id

from lanpeer.library.errors import ServeRefused
from lanpeer.share import page
from lanpeer.share.access import PartyKeyCheck
from lanpeer.share.crc import Crc32Cache, FileChanged
from lanpeer.share.guard import ConnectionGuard
from lanpeer.share.ranges import Part, Parts, Unsatisfiable, Whole, choose_range
from lanpeer.share.rawsend import BodySocket, Limiter, dup_connection_socket
from lanpeer.share.zipmap import FileBytes, HeaderBytes, Piece, ZipEntry, ZipLayout

log = logging.getLogger(__name__)

#: Layouts kept per (game, manifest): a big game's central directory is a few MB.
LAYOUT_CACHE = 8


@dataclass(frozen=True)
class ShareLimits:
    """Bounds of the share; each number says why it is what it is."""

    #: Open connections in total / per client address: a browser opens at most 6 per host, a
    #: download manager 8-16; past this a client gets a 503 and the daemon keeps its fds.
    max_connections: int = 64
    connections_per_address: int = 16
    #: Bodies being sent at once (each a sendfile from the page cache, no buffer of its own): in
    #: total as many as the node's per-peer chunk uploads times two, and per client
    #: address so one PC with a 16-connection download manager cannot take every slot.
    max_downloads: int = 16
    downloads_per_address: int = 4
    #: A request head must arrive this long after connecting or after the previous response
    #: (slowloris); browsers send it at once. Also the idle keep-alive time.
    head_timeout: float = 30.0
    #: A reader that takes no piece for this long is gone (4 MiB in 60 s: a 70 KB/s floor).
    #: Pieces of 4 MiB: 1 MiB ones cost ~10% more server CPU per GiB (bench/bench_share.py).
    stall_timeout: float = 60.0
    piece_size: int = 4 << 20
    #: Request line and each header field; aiohttp's defaults, as nginx's 8 KiB buffers.
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 64


class ShareLibrary(Protocol):
    """What the share needs of ``lanpeer.library.GameLibrary``."""

    def snapshot(self) -> list[GameSummary]: ...
    async def wait_manifest(self, game_id: str, *, for_peer: bool = True) -> Manifest: ...
    def open_served_file(self, game_id: str, manifest_hash: bytes, path: str) -> int: ...
    def cached_crc32s(self, game_id: str) -> dict[str, int | None]: ...
    def store_crc32(self, game_id: str, fd: int, path: str, crc32: int) -> bool: ...
    def add_listener(self, callback: Callable[[int], None]) -> None: ...


@dataclass
class ShareDownload:
    """One body being sent: who, what, how far (for ``peer-cli share`` and ``uploads``)."""

    client: str
    game_id: str
    item: str  # "<id>.zip" or the file's path
    total: int  # bytes of this response (the range when resumed)
    offset: int = 0  # where the response starts in the item (a resumed download)
    sent: int = 0
    started: float = field(default_factory=time.time)


@dataclass(frozen=True)
class _Body:
    """What a GET serves: its size, ETag and pieces, and where each file piece's bytes live."""

    manifest: Manifest
    item: str
    size: int
    etag: str
    content_type: str
    filename: str
    pieces: Callable[[int, int], Iterable[Piece]]
    paths: tuple[str, ...]  # FileBytes.index -> served path


class ShareServer:
    def __init__(
        self,
        library: ShareLibrary,
        host: str,
        port: int,
        *,
        name: str,
        party_key: str | None = None,
        limiter: Limiter | None = None,
        limits: ShareLimits | None = None,
    ) -> None:
        self._library = library
        self._host, self._port, self._name = host, port, name
        self._access = PartyKeyCheck(party_key)
        self._limiter = limiter  # the daemon's upload cap, shared with peer uploads
        self.limits = limits or ShareLimits()
        self._guard = ConnectionGuard(
            max_connections=self.limits.max_connections,
            per_address=self.limits.connections_per_address,
            head_timeout=self.limits.head_timeout,
        )
        self._crcs = Crc32Cache(library)
        self._layouts: dict[tuple[str, bytes], ZipLayout] = {}
        self._downloads: list[ShareDownload] = []
        self._wanted = asyncio.Event()  # the library changed: CRCs may need computing
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> ShareServer:
        app = web.Application(middlewares=[self._bounds], client_max_size=64 << 10)
        app.router.add_get("/", self._games_page)
        app.router.add_get("/games/{game_id}.zip", self._zip)
        app.router.add_get("/games/{game_id}/", self._files_page)
        app.router.add_get("/games/{game_id}/files/{path:.+}", self._file)
        limits = self.limits
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, keepalive_timeout=limits.head_timeout,
            max_line_size=limits.max_line_size, max_field_size=limits.max_field_size,
            max_headers=limits.max_headers,
        )  # fmt: skip
        await self._runner.setup()
        loop = asyncio.get_running_loop()
        factory = self._guard.wrap(self._runner.server)  # type: ignore[arg-type]
        await self._crcs.start()  # before the first request can ask for CRCs
        try:
            self._server = await loop.create_server(factory, self._host, self._port)
        except BaseException:
            await self._crcs.aclose()
            raise
        self._library.add_listener(lambda _rev: self._wanted.set())
        self._wanted.set()
        log.warning(
            "HTTP share on %s: every downloaded catalog game can be fetched by anyone on the LAN%s",
            self.url, " who has the party key" if self._access.required
            else " (no party key set: no password asked)",
        )  # fmt: skip
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self._crcs.aclose()

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "the share is not started"
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """The page's URL; on a wildcard bind, with an address other LAN hosts can reach."""
        host, port = self.address
        if host in ("0.0.0.0", "::"):
            host = _lan_address(host)
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def link_url(self) -> str:
        """The page's URL, with the link token when a party key protects the share."""
        token = self._access.token
        return self.url + (f"?token={token}" if token else "")

    def downloads(self) -> list[ShareDownload]:
        return list(self._downloads)

    async def run(self) -> None:
        """Compute the CRC-32s of newly served games ahead of their first download."""
        done: set[tuple[str, bytes]] = set()  # (game, manifest_hash) whose CRCs are known
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            games = [g for g in self._library.snapshot() if g.manifest_hash is not None]
            done &= {(g.id, g.manifest_hash) for g in games if g.manifest_hash is not None}
            for game in games:
                key = (game.id, game.manifest_hash or b"")
                if key in done:
                    continue
                try:
                    await self._crcs.wait_crcs(await self._library.wait_manifest(game.id))
                    done.add(key)
                except (ServeRefused, FileChanged, OSError) as exc:  # retried on the next change
                    log.info("share: CRC-32 of %s not ready: %s", game.id, exc)

    # -- requests ----------------------------------------------------------------------------

    @web.middleware
    async def _bounds(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self._guard.request_started(request.transport)
        try:
            if not self._access.allows(request.query, request.headers):
                return web.Response(
                    status=401,
                    text="this share needs the party key (any user name, the key as password)\n",
                    headers={"WWW-Authenticate": 'Basic realm="lanpeer share", charset="UTF-8"'},
                )
            return await handler(request)
        finally:
            self._guard.request_done(request.transport)

    async def _games_page(self, _request: web.Request) -> web.Response:
        games = [g for g in self._library.snapshot() if g.manifest_hash is not None]
        html = page.games_page(self._name, games, self._access.token)
        return web.Response(text=html, content_type="text/html")

    async def _files_page(self, request: web.Request) -> web.Response:
        game_id = request.match_info["game_id"]
        manifest = await self._manifest(game_id)
        summary = next((g for g in self._library.snapshot() if g.id == game_id), None)
        if summary is None:
            raise web.HTTPNotFound(text="no such game\n")
        html = page.files_page(summary, manifest.files, self._access.token)
        return web.Response(text=html, content_type="text/html")

    async def _zip(self, request: web.Request) -> web.StreamResponse:
        manifest = await self._manifest(request.match_info["game_id"])
        layout = await self._layout(manifest)
        body = _Body(
            manifest, f"{manifest.game_id}.zip", layout.size, f'"{manifest.manifest_hash.hex()}"',
            "application/zip", f"{manifest.game_id}.zip", layout.pieces,
            tuple(f.path for f in manifest.files),
        )  # fmt: skip
        return await self._answer(request, body)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        manifest = await self._manifest(request.match_info["game_id"])
        path = request.match_info["path"]
        file = next((f for f in manifest.files if f.path == path), None)
        if file is None:
            raise web.HTTPNotFound(text=f"{manifest.game_id} has no file {path!r}\n")
        etag = '"' + blake3.blake3(b"".join(file.chunk_hashes)).hexdigest()[:32] + '"'

        def pieces(start: int, end: int) -> list[Piece]:
            return [FileBytes(0, start, end - start)] if end > start else []

        name = path.rsplit("/", 1)[-1]
        body = _Body(manifest, path, file.size, etag, "application/octet-stream", name, pieces,
                     (path,))  # fmt: skip
        return await self._answer(request, body)

    async def _manifest(self, game_id: str) -> Manifest:
        if not is_game_id(game_id):
            raise web.HTTPNotFound(text="no such game\n")
        try:
            return await self._library.wait_manifest(game_id)
        except ServeRefused as exc:
            raise _http_refusal(exc) from exc

    async def _layout(self, manifest: Manifest) -> ZipLayout:
        key = (manifest.game_id, manifest.manifest_hash)
        layout = self._layouts.get(key)
        if layout is None:
            try:
                crcs = await self._crcs.wait_crcs(manifest)
            except FileChanged as exc:
                raise web.HTTPServiceUnavailable(
                    text=f"{manifest.game_id} is changing; try again shortly\n",
                    headers={"Retry-After": "10"},
                ) from exc
            except ServeRefused as exc:
                raise _http_refusal(exc) from exc
            except OSError as exc:
                raise web.HTTPInternalServerError(text=f"cannot read the game: {exc}\n") from exc
            entries = [
                ZipEntry(f"{manifest.game_id}/{f.path}", f.size, crcs[f.path])
                for f in manifest.files
            ]
            layout = self._layouts[key] = ZipLayout(entries)
            while len(self._layouts) > LAYOUT_CACHE:
                del self._layouts[next(iter(self._layouts))]
        return layout

    async def _answer(self, request: web.Request, body: _Body) -> web.StreamResponse:
        choice = choose_range(
            request.headers.get("Range"), request.headers.get("If-Range"), body.etag, body.size
        )
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": body.etag,
            "Content-Type": body.content_type,
            "Content-Disposition": _attachment(body.filename),
        }
        if isinstance(choice, Unsatisfiable):
            headers["Content-Range"] = f"bytes */{body.size}"
            return web.Response(status=416, headers=headers)
        plan = _plan(choice, body)
        response = web.StreamResponse(status=200 if isinstance(choice, Whole) else 206)
        response.headers.update(headers)
        response.headers.update(plan.headers)
        response.content_length = plan.length
        if request.method == "HEAD":
            await response.prepare(request)
            await response.write_eof()
            return response
        client = request.remote or "?"
        async with self._download_slot(client, body, plan.start, plan.length) as download:
            await self._send(request, response, body, plan.pieces, download)
        return response

    @asynccontextmanager
    async def _download_slot(
        self, client: str, body: _Body, start: int, length: int
    ) -> AsyncIterator[ShareDownload]:
        mine = sum(1 for d in self._downloads if d.client == client)
        limits = self.limits
        if len(self._downloads) >= limits.max_downloads or mine >= limits.downloads_per_address:
            raise web.HTTPServiceUnavailable(
                text="too many downloads at once; retry shortly\n", headers={"Retry-After": "5"}
            )
        download = ShareDownload(client, body.manifest.game_id, body.item, length, start)
        self._downloads.append(download)
        log.info("share: %s downloads %s (%d bytes from %d)", client, body.item, length, start)
        try:
            yield download
        finally:
            self._downloads.remove(download)
            log.info("share: %s got %d of %d bytes of %s", client, download.sent,
                     download.total, body.item)  # fmt: skip

    async def _send(
        self,
        request: web.Request,
        response: web.StreamResponse,
        body: _Body,
        pieces: Iterable[Piece],
        download: ShareDownload,
    ) -> None:
        transport = request.transport
        assert transport is not None
        transport.set_write_buffer_limits(high=0)  # drain() below returns once the head is out
        writer = await response.prepare(request)
        assert writer is not None
        await writer.drain()
        sock = dup_connection_socket(transport) if not transport.get_write_buffer_size() else None
        if sock is None:  # not a plain TCP socket (or already closing): the head is out, so close
            log.warning("share: the connection for %s cannot carry a body", download.item)
            transport.close()
            return

        def sent(n: int) -> None:
            download.sent += n

        out = BodySocket(
            sock, stall_timeout=self.limits.stall_timeout, piece_size=self.limits.piece_size,
            limiter=self._limiter, on_sent=sent,
        )  # fmt: skip
        try:
            for piece in pieces:
                if isinstance(piece, HeaderBytes):
                    await out.send_bytes(piece.data)
                else:
                    await self._send_file_piece(out, body, piece)
        except (ConnectionError, TimeoutError, OSError, web.HTTPException) as exc:
            log.info("share: %s stopped after %d bytes: %s", download.item, download.sent, exc)
            transport.close()  # the head promised more bytes: only a closed connection is honest
            return
        finally:
            out.close()
        await response.write_eof()

    async def _send_file_piece(self, out: BodySocket, body: _Body, piece: FileBytes) -> None:
        manifest = body.manifest
        try:
            fd = self._library.open_served_file(
                manifest.game_id, manifest.manifest_hash, body.paths[piece.index]
            )
        except ServeRefused as exc:
            raise _http_refusal(exc) from exc
        try:
            await out.send_file(fd, piece.offset, piece.length)
        finally:
            os.close(fd)


def _lan_address(wildcard: str) -> str:
    """This host's address on its default route (a UDP connect sends nothing), else its name."""
    family = socket.AF_INET6 if wildcard == "::" else socket.AF_INET
    probe_target = "2001:db8::1" if family == socket.AF_INET6 else "192.0.2.1"  # documentation
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((probe_target, 9))
            return str(probe.getsockname()[0])
    except OSError:
        return socket.gethostname()


@dataclass(frozen=True)
class _Plan:
    """What one GET sends: extra headers, the body length and its pieces in order."""

    headers: dict[str, str]
    start: int  # of the first range (the download table's "offset")
    length: int
    pieces: Iterable[Piece]


def _plan(choice: Whole | Part | Parts, body: _Body) -> _Plan:
    if isinstance(choice, Whole):
        return _Plan({}, 0, body.size, body.pieces(0, body.size))
    if isinstance(choice, Part):
        headers = {"Content-Range": choice.content_range(body.size)}
        return _Plan(headers, choice.start, choice.end - choice.start,
                     body.pieces(choice.start, choice.end))  # fmt: skip
    # multipart/byteranges (RFC 9110 §14.6): the boundary is derived from the ETag, so HEAD and
    # GET agree; 24 hex digits of a BLAKE3 do not turn up in the parts by chance.
    boundary = "lanpeer-" + blake3.blake3(body.etag.encode()).hexdigest()[:24]
    pieces: list[Piece] = []
    for part in choice.parts:
        head = (
            f"\r\n--{boundary}\r\nContent-Type: {body.content_type}\r\n"
            f"Content-Range: {part.content_range(body.size)}\r\n\r\n"
        )
        pieces.append(HeaderBytes(head.encode()))
        pieces.extend(body.pieces(part.start, part.end))
    pieces.append(HeaderBytes(f"\r\n--{boundary}--\r\n".encode()))
    length = sum(len(p.data) if isinstance(p, HeaderBytes) else p.length for p in pieces)
    headers = {"Content-Type": f"multipart/byteranges; boundary={boundary}"}
    return _Plan(headers, choice.parts[0].start, length, pieces)


def _attachment(filename: str) -> str:
    """Content-Disposition with an ASCII fallback name and the exact UTF-8 one (RFC 6266)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                       for c in filename)  # fmt: skip
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def _http_refusal(exc: ServeRefused) -> web.HTTPException:
    """A library refusal as an HTTP answer: not served -> 404, busy or changing -> 503."""
    if exc.wire_code in (ErrorCode.NOT_FOUND, ErrorCode.BAD_PATH):
        return web.HTTPNotFound(text="not found\n")
    if exc.wire_code in (ErrorCode.BUSY, ErrorCode.STALE_MANIFEST):
        return web.HTTPServiceUnavailable(
            text="that game is busy or changing; try again shortly\n", headers={"Retry-After": "10"}
        )
    log.warning("share: unexpected refusal %r", exc)
    return web.HTTPInternalServerError(text="the share could not read that game\n")
