"""Who may use the web UI: the access token, the Host check and the Origin check (SPEC §9b).

Owns the 0600 token file in the state dir, the SameSite=Strict cookie that replaces the URL
parameter after the first visit, and one aiohttp middleware that refuses, before any handler
runs: no token (401), a Host that is not an address of ours (DNS rebinding, 403), and a
state-changing request or live channel from a foreign Origin (CSRF, 403). Never answers CORS.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import hdrs, web

log = logging.getLogger(__name__)

TOKEN_FILE = "web-token"
TOKEN_PARAM = "token"

# The page loads only its own files, is never framed (clickjacking) and leaks no Referer.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_or_create_token(state: Path) -> str:
    """The token in ``state/web-token``, created 0600 on first use (no chmod race)."""
    path = state / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if len(token) >= 32 and (path.stat().st_mode & 0o077) == 0:
            return token
        log.warning("web token %s is short or readable by others; making a new one", path)
        path.unlink()
        return load_or_create_token(state)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as stream:
        stream.write(token + "\n")
    return token


def host_is_ours(host_header: str | None, port: int) -> bool:
    """True for ``localhost:PORT`` or ``<IP literal>:PORT``: a rebound DNS name never passes."""
    if not host_header:
        return False
    host, sep, port_text = host_header.rpartition(":")
    if not sep or port_text != str(port):
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class AccessGuard:
    """The middleware and the cookie of one web UI listening on ``port``."""

    def __init__(self, token: str, port: int) -> None:
        self._token = token
        self._port = port
        # Cookies are shared by every port of a host: the name keeps two daemons' UIs apart.
        self.cookie = f"lanpeer_{port}"

    def allows(self, candidate: str | None) -> bool:
        if candidate is None:
            return False
        return hmac.compare_digest(candidate.encode(), self._token.encode())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not host_is_ours(request.headers.get(hdrs.HOST), self._port):
            return _refuse(403, "this address is not the lanpeer web UI's (Host refused)")
        if _changes_state(request) and not self._same_origin(request):
            return _refuse(403, "requests from another site are refused (Origin refused)")
        from_url = request.query.get(TOKEN_PARAM)
        if not (self.allows(from_url) or self.allows(request.cookies.get(self.cookie))):
            return _refuse(401, "open the web UI with `peer-cli ui` (it knows the token)")
        if from_url is not None and request.method == "GET" and not _is_live(request):
            # Trade the token in the address bar for the cookie: it leaves no trace in history.
            redirect = web.Response(status=303, headers={hdrs.LOCATION: request.path})
            redirect.set_cookie(self.cookie, self._token, httponly=True, samesite="Strict")
            return redirect
        response = await handler(request)
        if not response.prepared:  # the live channel has sent its headers already
            response.headers.update(SECURITY_HEADERS)
            # Revalidate every time: after an upgrade of lanpeer, no tab runs yesterday's script.
            response.headers.setdefault("Cache-Control", "no-cache")
        return response

    def _same_origin(self, request: web.Request) -> bool:
        origin = request.headers.get(hdrs.ORIGIN)
        return origin is not None and origin == f"http://{request.headers.get(hdrs.HOST)}"


def _is_live(request: web.Request) -> bool:
    return request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"


def _changes_state(request: web.Request) -> bool:
    return request.method not in ("GET", "HEAD") or _is_live(request)


def _refuse(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain")
