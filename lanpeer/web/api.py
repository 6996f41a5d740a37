"""What the web UI's page asks for: the state snapshot, commands, covers, doctor (SPEC §9b).

Owns turning HTTP into control requests and back. Every read and every action goes through
the daemon's control command dispatcher (``answer``), the very one behind ``peer-cli``: the page
can never do what ``peer-cli`` cannot. Covers are opened with the library's served-file rules
(no symlink, no ``local/``, only files of the current manifest). Never holds state of its own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from aiohttp import web
from lanpeer_proto.control import (
    ControlErrorCode,
    DoctorRequest,
    ErrorMessage,
    GamesRequest,
    OpsRequest,
    PeersRequest,
    Request,
    ResultMessage,
    StatusRequest,
    UiRequest,
    UploadsRequest,
    WatchRequest,
    decode_request,
    encode_server_message,
    error_for,
)
from lanpeer_proto.errors import RemoteProtocolError
from lanpeer_proto.paths import GAME_ID_RE

from lanpeer.control.server import Answer, error_message
from lanpeer.errors import LanpeerError
from lanpeer.library import GameLibrary
from lanpeer.web.live import Throughput

log = logging.getLogger(__name__)

# Cover art is a picture at the top of the game dir, served like any file of the game.
COVER_NAMES = {
    "cover.jpg": "image/jpeg",
    "cover.jpeg": "image/jpeg",
    "cover.png": "image/png",
    "cover.webp": "image/webp",
}
# A cover is shown 200 px wide: 4 MiB is far beyond a good one and bounds what a tab can pin.
MAX_COVER = 4 << 20

HTTP_STATUS = {
    ControlErrorCode.BAD_REQUEST: 400,
    ControlErrorCode.UNSUPPORTED_VERSION: 400,
    ControlErrorCode.FORBIDDEN: 403,
    ControlErrorCode.UNKNOWN_GAME: 404,
    ControlErrorCode.UNKNOWN_PEER: 404,
    ControlErrorCode.CONFLICT: 409,
    ControlErrorCode.FAILED: 422,
    ControlErrorCode.NOT_AVAILABLE: 503,
    ControlErrorCode.SHUTTING_DOWN: 503,
}

SNAPSHOT_PARTS: tuple[tuple[str, Request], ...] = (
    ("status", StatusRequest()),
    ("games", GamesRequest()),
    ("ops", OpsRequest(all=True)),  # active ones, and the finished ones with error and hint
    ("peers", PeersRequest()),
    ("uploads", UploadsRequest()),
)


class WebApi:
    """The handlers of the page's requests."""

    def __init__(
        self,
        answer: Answer,
        throughput: Throughput,
        library: GameLibrary,
    ) -> None:
        self._answer = answer
        self._throughput = throughput
        self._library = library

    async def ask(self, request: Request) -> ResultMessage | ErrorMessage:
        """``answer``, with errors as error messages (as the control socket turns them)."""
        try:
            return await self._answer(request)
        except LanpeerError as exc:
            return error_message(exc)
        except Exception as exc:
            log.exception("web: control command %s failed", request.cmd)
            return ErrorMessage(code=ControlErrorCode.FAILED, message=f"internal error: {exc}")

    async def snapshot(self) -> dict[str, Any]:
        """Everything a page shows, as the control documents (``None`` + why where missing)."""
        doc: dict[str, Any] = {"errors": {}}
        for key, request in SNAPSHOT_PARTS:
            answer = await self.ask(request)
            if isinstance(answer, ErrorMessage):
                doc[key] = None
                doc["errors"][key] = answer.message
            else:
                doc[key] = answer.result.model_dump(mode="json", exclude={"kind"})
        doc["throughput"] = list(self._throughput.samples)
        doc["now"] = time.time()
        return doc

    async def state(self, _request: web.Request) -> web.Response:
        return web.json_response(await self.snapshot(), headers=NO_STORE)

    async def doctor(self, _request: web.Request) -> web.Response:
        return _answer_response(await self.ask(DoctorRequest()))

    async def command(self, request: web.Request) -> web.Response:
        """POST a control request line as JSON; the answer is the control socket's answer."""
        try:
            parsed = decode_request(await request.read())
        except RemoteProtocolError as exc:
            return _answer_response(error_for(exc))
        if isinstance(parsed, (WatchRequest, UiRequest)):
            refusal = ErrorMessage(
                code=ControlErrorCode.BAD_REQUEST,
                message=f"{parsed.cmd} is not a web command (the page has its live channel)",
            )
            return _answer_response(refusal)
        log.info("web: %s requested", parsed.cmd)
        return _answer_response(await self.ask(parsed))

    async def cover(self, request: web.Request) -> web.Response:
        game_id = request.match_info["game_id"]
        library = self._library
        game = None
        if GAME_ID_RE.fullmatch(game_id):
            game = next((g for g in library.local_games() if g.id == game_id), None)
        if game is None or game.manifest_hash is None:
            raise web.HTTPNotFound(text="no cover\n")
        for name, content_type in COVER_NAMES.items():
            try:
                fd = library.open_served_file(game_id, game.manifest_hash, name)
            except LanpeerError:  # ServeRefused: not in the manifest, changed, a symlink...
                continue
            body = await asyncio.to_thread(_read_bounded, fd, MAX_COVER)
            if body is not None:
                headers = {"Cache-Control": "private, max-age=60"}
                return web.Response(body=body, content_type=content_type, headers=headers)
        raise web.HTTPNotFound(text="no cover\n")


NO_STORE = {"Cache-Control": "no-store"}


def _answer_response(answer: ResultMessage | ErrorMessage) -> web.Response:
    status = 200 if isinstance(answer, ResultMessage) else HTTP_STATUS.get(answer.code, 500)
    return web.Response(
        body=encode_server_message(answer),
        status=status,
        content_type="application/json",
        headers=NO_STORE,
    )


def _read_bounded(fd: int, limit: int) -> bytes | None:
    """The file behind ``fd`` (closed here), or None when it is larger than ``limit``."""
    with os.fdopen(fd, "rb") as stream:
        body = stream.read(limit + 1)
    return body if len(body) <= limit else None
