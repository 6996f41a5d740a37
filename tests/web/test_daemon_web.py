"""How lanpeerd starts its web UI: the settings, a port already taken (a warning, the daemon
runs on), --no-web, and what `peer-cli ui` says in each case."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lanpeer.config import ConfigError, build_config
from tests.daemon.harness import Lanpeerd
from tests.web.conftest import tcp_free_port


def test_the_default_is_this_host_only() -> None:
    assert build_config({}, {}).web_address == ("127.0.0.1", 47680)
    assert build_config({"no_web": True}, {}).web_address is None
    assert build_config({}, {"web": "127.0.0.1:9000"}).web_address == ("127.0.0.1", 9000)
    assert build_config({}, {"web": "[::1]:9000"}).web_address == ("::1", 9000)


def test_a_network_address_needs_web_public() -> None:
    with pytest.raises(ConfigError, match=r"flag --web = '0\.0\.0\.0:47680'.*web-public"):
        build_config({}, {"web": "0.0.0.0:47680"})
    with pytest.raises(ConfigError, match=r"key 'web' = '192\.168\.1\.5:47680'.*web-public"):
        build_config({"web": "192.168.1.5:47680"}, {})
    public = build_config({"web": "0.0.0.0:47680", "web_public": True}, {})
    assert public.web_address == ("0.0.0.0", 47680)
    with pytest.raises(ConfigError, match="flag --web = '47680': expected HOST:PORT"):
        build_config({}, {"web": "47680"})
    assert build_config({"web": "0.0.0.0:47680", "no_web": True}, {}).web_address is None


@pytest.mark.process
def test_a_taken_port_is_a_warning_and_the_daemon_runs_on(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        port = squatter.getsockname()[1]
        daemon = Lanpeerd(tmp_path / "a", web=f"127.0.0.1:{port}").start()
        try:
            status = daemon.cli("status")
            assert status.rc == 0
            assert "WARNING" in daemon.log_text()
            assert f"web UI: cannot listen on 127.0.0.1:{port}" in daemon.log_text()
            ui = daemon.cli("ui", "--print-url", json_output=False)
            assert ui.rc == 1
            assert "not running" in ui.err
            assert f"127.0.0.1:{port}" in ui.err
        finally:
            daemon.kill()


@pytest.mark.process
def test_no_web_and_peer_cli_ui(tmp_path: Path) -> None:
    off = Lanpeerd(tmp_path / "off").start()  # the harness passes --no-web
    on = Lanpeerd(tmp_path / "on", name="on", web=f"127.0.0.1:{tcp_free_port()}").start()
    try:
        ui = off.cli("ui", "--print-url", json_output=False)
        assert ui.rc == 1
        assert "--no-web" in ui.err
        assert not (off.state / "web-token").exists()
        printed = on.cli("ui", "--print-url", json_output=False)
        assert printed.rc == 0
        token = (on.state / "web-token").read_text().strip()
        assert printed.out.strip() == f"http://{on.web}/?token={token}"
        assert on.cli("ui").doc == {"ok": True, "url": printed.out.strip()}
    finally:
        off.kill()
        on.kill()


@pytest.mark.process
def test_open_tabs_do_not_hold_up_a_stop(tmp_path: Path) -> None:
    web = f"127.0.0.1:{tcp_free_port()}"
    daemon = Lanpeerd(tmp_path / "a", web=web).start()
    tabs: list[socket.socket] = []
    try:
        token = (daemon.state / "web-token").read_text().strip()
        tabs = [_open_tab(web, token) for _ in range(3)]
        assert all(tab.recv(4096).startswith(b"HTTP/1.1 101") for tab in tabs)
        assert daemon.stop(timeout=10) == 0  # SIGTERM: the tabs are closed, not waited for
        assert "stopped" in daemon.log_text()
    finally:
        daemon.kill()
        for tab in tabs:
            tab.close()


def _open_tab(web: str, token: str) -> socket.socket:
    host, port = web.rsplit(":", 1)
    tab = socket.create_connection((host, int(port)), timeout=10)
    tab.sendall(
        (
            f"GET /api/live?token={token} HTTP/1.1\r\nHost: {web}\r\nOrigin: http://{web}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return tab
