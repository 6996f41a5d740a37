"""Who may use a real daemon's web UI: the token (401), Host (DNS rebinding) and Origin (CSRF)
checks, no CORS, the 0600 token file, covers through the served-file rules, and commands that
are the control socket's own (same answers, same errors)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import stat
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.daemon.harness import wait_until
from tests.web.conftest import games_of

pytestmark = pytest.mark.process


class Web:
    """Raw HTTP to the UI, every header under the test's control."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = str(parts.hostname)
        self.port = int(parts.port or 80)
        self.token = parts.query.removeprefix("token=")
        self.origin = f"http://{self.host}:{self.port}"

    def call(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        token: str | None = "cookie",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        sent = {"Host": f"{self.host}:{self.port}"}
        if token == "cookie":
            sent["Cookie"] = f"lanpeer_{self.port}={self.token}"
        sent.update(headers or {})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def command(self, request: dict[str, Any], **kwargs: Any) -> tuple[int, Any]:
        headers = {"Origin": self.origin, "Content-Type": "application/json"}
        headers.update(kwargs.pop("headers", {}))
        status, _, body = self.call(
            "POST", "/api/command", json.dumps(request).encode(), headers=headers, **kwargs
        )
        return status, json.loads(body) if body.startswith(b"{") else body.decode()

    def live_upgrade(self, origin: str) -> int:
        key = base64.b64encode(os.urandom(16)).decode()
        headers = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Version": "13",
            "Origin": origin,
        }
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            sent = {"Host": f"{self.host}:{self.port}", **headers}
            sent["Cookie"] = f"lanpeer_{self.port}={self.token}"
            conn.request("GET", "/api/live", headers=sent)
            return conn.getresponse().status
        finally:
            conn.close()


@pytest.fixture(scope="module")
def web(lan: dict[str, Any]) -> Web:
    return Web(lan["url"])


@pytest.mark.parametrize("path", ["/", "/api/state", "/static/app.js", "/api/cover/space-race"])
def test_every_path_needs_the_token(web: Web, path: str) -> None:
    status, _, body = web.call("GET", path, token=None)
    assert status == 401
    assert b"peer-cli ui" in body
    status, _, _ = web.call("GET", path, token=None, headers={"Cookie": f"lanpeer_{web.port}=no"})
    assert status == 401
    assert web.call("GET", f"{path}?token=wrong", token=None)[0] == 401


def test_the_token_url_becomes_a_strict_cookie_and_leaves_the_address_bar(web: Web) -> None:
    status, headers, _ = web.call("GET", f"/?token={web.token}", token=None)
    assert status == 303
    assert headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert f"lanpeer_{web.port}={web.token}" in cookie
    assert "SameSite=Strict" in cookie
    assert "HttpOnly" in cookie
    status, headers, body = web.call("GET", "/")
    assert status == 200
    assert b"/static/app.js" in body
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_the_token_file_is_private_and_is_the_one_peer_cli_prints(lan: dict[str, Any]) -> None:
    path = lan["leecher"].state / "web-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert lan["url"].endswith(f"?token={path.read_text().strip()}")


def test_a_foreign_host_is_refused_even_with_the_token(web: Web) -> None:
    """DNS rebinding: evil.example resolving to 127.0.0.1 still sends Host: evil.example."""
    for host in (f"evil.example:{web.port}", f"127.0.0.1:{web.port + 1}", "127.0.0.1"):
        status, _, body = web.call("GET", "/api/state", headers={"Host": host})
        assert status == 403, host
        assert b"Host refused" in body


def test_state_changes_need_our_origin(web: Web) -> None:
    request = {"cmd": "rescan"}
    assert web.command(request)[0] == 200
    for origin in ("http://evil.example", f"http://127.0.0.1:{web.port + 1}", "null"):
        status, body = web.command(request, headers={"Origin": origin})
        assert status == 403, origin
        assert "Origin refused" in body
    status, _, _ = web.call("POST", "/api/command", json.dumps(request).encode())  # no Origin
    assert status == 403


def test_the_live_channel_needs_our_origin(web: Web) -> None:
    assert web.live_upgrade("http://evil.example") == 403
    assert web.live_upgrade(web.origin) == 101


def test_no_cors_is_ever_granted(web: Web) -> None:
    status, headers, _ = web.call("GET", "/api/state", headers={"Origin": "http://evil.example"})
    assert status == 200  # a read: the browser keeps it from the other site without CORS
    assert not any(name.lower().startswith("access-control-") for name in headers)
    status, headers, _ = web.call(
        "OPTIONS",
        "/api/command",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert status == 403
    assert not any(name.lower().startswith("access-control-") for name in headers)


def test_commands_answer_as_the_control_socket_does(web: Web, lan: dict[str, Any]) -> None:
    status, answer = web.command({"cmd": "download", "game_id": "no-such-game"})
    assert status == 404
    assert answer["type"] == "error"
    assert answer["code"] == "unknown_game"
    cli = lan["leecher"].cli("download", "no-such-game")
    assert cli.doc["message"] == answer["message"]  # the same words as peer-cli's
    status, answer = web.command({"cmd": "download", "game_id": "../etc"})
    assert status == 400
    assert answer["code"] == "bad_request"
    status, answer = web.command({"cmd": "watch"})
    assert status == 400
    assert "live channel" in answer["message"]
    status, _, _ = web.call(
        "POST", "/api/command", b"x" * (128 << 10), headers={"Origin": web.origin}
    )
    assert status == 413  # bounded like a control request line


def test_a_cover_is_served_once_downloaded_and_nothing_else_is(
    web: Web, lan: dict[str, Any]
) -> None:
    leecher = lan["leecher"]
    if not games_of(leecher)["tiny-tanks"]["downloaded"]:
        assert leecher.cli("download", "tiny-tanks", "--wait", timeout=60).rc == 0
    wait_until(
        "tiny-tanks hashed on the leecher",
        lambda: games_of(leecher)["tiny-tanks"]["state"] in ("downloaded", "installed"),
    )
    status, headers, body = web.call("GET", "/api/cover/tiny-tanks")
    assert status == 200
    assert headers["Content-Type"] == "image/png"
    assert body == (lan["home"] / "seeder" / "games" / "tiny-tanks" / "cover.png").read_bytes()
    # A link planted in the game dir is never followed (the served-file rules).
    game_dir = leecher.games / "tiny-tanks"
    (game_dir / "cover.jpg").symlink_to("/etc/passwd")
    try:
        assert web.call("GET", "/api/cover/slow-game")[0] == 404  # remote: no file here
        for path in ("/api/cover/..%2F..%2Fetc", "/api/cover/tiny-tanks%2F..%2Flocal"):
            assert web.call("GET", path)[0] == 404
        served = wait_until(  # the new entry may make the library look at the game again
            "the cover served again",
            lambda: (got := web.call("GET", "/api/cover/tiny-tanks"))[0] == 200 and got[2],
        )
        assert served == body  # the png, never what the link points at
    finally:
        (game_dir / "cover.jpg").unlink()
