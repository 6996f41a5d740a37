"""``--http-share`` / ``http-share``: off by default, from flags or the config file, bad values."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from lanpeer.config import ConfigError, build_config, parse_share_address
from tests.daemon.harness import Lanpeerd


def test_share_addresses_parse_or_say_what_is_expected() -> None:
    assert parse_share_address("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_share_address("[::1]:0") == ("::1", 0)
    assert parse_share_address(None) is None
    for bad in ("8080", "host:", ":80", "host:70000", "host:http", 8080):
        with pytest.raises(ValueError, match="ADDR:PORT"):
            parse_share_address(bad)
    with pytest.raises(ConfigError, match=r"flag --http-share = 'x': expected ADDR:PORT"):
        build_config({}, {"http_share": "x"})
    assert build_config({"http_share": "127.0.0.1:0"}, {}).http_share == ("127.0.0.1", 0)
    assert build_config({}, {}).http_share is None  # off by default


@pytest.mark.process
def test_the_config_file_turns_the_share_on_with_a_warning(tmp_path: Path) -> None:
    config = tmp_path / "lanpeerd.toml"
    config.write_text('http-share = "127.0.0.1:0"\n')
    daemon = Lanpeerd(tmp_path / "home", extra=["--config", str(config)]).start()
    try:
        doc = daemon.cli("share").doc
        assert doc["enabled"] is True
        assert doc["url"].startswith("http://127.0.0.1:")
        assert "WARNING" in daemon.log_text()
        assert "can be fetched by anyone on the LAN" in daemon.log_text()
    finally:
        daemon.kill()


@pytest.mark.process
def test_a_bad_share_address_stops_the_daemon_with_exit_2(tmp_path: Path) -> None:
    daemon = Lanpeerd(tmp_path, extra=["--http-share", "everywhere"])
    done = subprocess.run(daemon.argv(), capture_output=True, timeout=30, check=False)
    assert done.returncode == 2
    assert b"flag --http-share = 'everywhere': expected ADDR:PORT" in done.stderr


@pytest.mark.process
def test_a_share_port_in_use_stops_the_daemon_with_its_reason(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        daemon = Lanpeerd(tmp_path, extra=["--http-share", f"127.0.0.1:{port}"])
        daemon.games.mkdir(parents=True)
        done = subprocess.run(daemon.argv(), capture_output=True, timeout=60, check=False)
    assert done.returncode == 1
    assert f"cannot serve the HTTP share on 127.0.0.1:{port}".encode() in done.stderr
