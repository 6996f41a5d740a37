"""In-process tests of the daemon's pure pieces: config, views, events, doctor checks."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lanpeer_proto import control as c

from lanpeer import doctor
from lanpeer.config import ConfigError, build_config, load_config_file, parse_host_port, parse_rate
from lanpeer.control import views
from lanpeer.control.events import EventHub
from lanpeer.control.server import error_message
from lanpeer.errors import ConflictError, LanpeerError, UnknownGameError


@pytest.mark.parametrize(
    ("text", "rate"),
    [("50MB/s", 50_000_000), ("4MiB/s", 4 << 20), ("100Mbit", 12_500_000), ("512k", 512_000),
     ("1G", 10**9), (None, None)],
)  # fmt: skip
def test_parse_rate(text: str | None, rate: int | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["fast", "-5MB/s", "0", "5 parsecs"])
def test_parse_rate_refuses_nonsense(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_rate(text)


def test_parse_host_port() -> None:
    assert parse_host_port("10.0.0.5:47600") == ("10.0.0.5", 47600)
    assert parse_host_port("[fe80::1]:1") == ("fe80::1", 1)
    for bad in ("host", "host:0", "host:99999", ":5"):
        with pytest.raises(ConfigError):
            parse_host_port(bad)


def test_flags_override_config_file_override_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('name = "file"\nport = 5000\npeers = ["1.2.3.4:5"]\nmax-download = "1MB/s"\n')
    config = build_config(load_config_file(path), {"name": "flag", "port": None, "peers": []})
    assert config.name == "flag"
    assert config.port == 5000
    assert config.peers == [("1.2.3.4", 5)]
    assert config.max_download == 1_000_000
    assert config.bind == "0.0.0.0"


def test_config_file_errors_are_clear(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("name = [unclosed\n")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config_file(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="bulk"):
        build_config({"bulk": "carrier-pigeon"}, {})


def test_version_order() -> None:
    assert views.newest(["1.9", "1.10", "1.2"]) == "1.10"
    assert views.version_key("2.0b") > views.version_key("2.0")


@dataclass
class Summary:
    id: str
    name: str
    version: str
    size: int = 10
    manifest_hash: bytes | None = b"h" * 32


@dataclass
class Peer:
    peer_id: str
    games: dict[str, Summary]
    connected: bool = True
    name: str = "p"
    address: tuple[str, int] = ("127.0.0.1", 1)
    proto_ver: str = "1.0"
    library_rev: int = 3
    last_seen: float = 0.0


@dataclass
class Local:
    id: str
    version: str | None
    downloaded: bool = True
    installed: bool = False
    local_only: bool = False
    name: str = "Local"
    size: int = 5
    manifest_hash: bytes | None = b"m" * 32
    in_catalog: bool = True
    extra: dict[str, str] = field(default_factory=dict)


def test_merged_library_marks_updates_and_remote_games() -> None:
    peers = [
        Peer(
            "A", {"doom": Summary("doom", "Doom", "1.10"), "quake": Summary("quake", "Quake", "2")}
        ),
        Peer("B", {"doom": Summary("doom", "Doom", "1.9", manifest_hash=None)}),
        Peer("C", {"doom": Summary("doom", "Doom", "9.9")}, connected=False),
    ]
    entries = {e.id: e for e in views.merge_games([Local("doom", "1.9")], peers, busy=set())}
    doom, quake = entries["doom"], entries["quake"]
    assert (doom.version, doom.newest_version, doom.update_available) == ("1.9", "1.10", True)
    assert doom.peers == ["A", "B"]
    assert doom.ready_peers == ["A"]
    assert doom.state == "downloaded"
    assert (quake.version, quake.state, quake.downloaded, quake.name) == (
        None,
        "remote",
        False,
        "Quake",
    )
    busy = views.merge_games([Local("doom", "1.9")], [], busy={"doom"})
    assert busy[0].state == "busy"
    hashing = views.merge_games([Local("doom", "1.9", manifest_hash=None)], [], busy=set())
    assert hashing[0].state == "hashing"


def test_error_lines_keep_codes_and_exit_codes() -> None:
    assert error_message(UnknownGameError("x")).exit_code == 4
    assert error_message(ConflictError("x")).exit_code == 5
    assert error_message(LanpeerError("x")).exit_code == 1


@pytest.mark.asyncio
async def test_slow_subscriber_loses_oldest_events_and_is_marked_lagged() -> None:
    hub = EventHub()
    with hub.subscribe() as fast, hub.subscribe("doom", only_game=True) as waiter:
        for rev in range(1100):
            hub.publish(c.LibraryChangedEvent(library_rev=rev))
        hub.publish(c.FinishedEvent(game_id="doom", ok=True))
        assert fast.lagged
        assert not waiter.lagged
        event = await asyncio.wait_for(waiter.wait_event(), 1)
        assert isinstance(event, c.FinishedEvent)
    assert hub.subscriber_count == 0


def test_interfaces_check_reads_sys_class_net(tmp_path: Path) -> None:
    for name, flags in (("lo", 0x49), ("eth0", 0x1043), ("wlan0", 0x1003)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "flags").write_text(hex(flags))
    check = doctor.interfaces_check(tmp_path)
    assert check.status == "ok"
    assert "eth0" in check.summary
    assert "wlan0" not in check.summary
    (tmp_path / "eth0" / "flags").write_text("0x1003")
    assert doctor.interfaces_check(tmp_path).status == "warn"


def test_bound_ports_finds_only_this_process_sockets() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        mine = doctor.own_socket_inodes(Path("/proc/self/fd"))
        found = doctor.bound_ports([Path("/proc/net/udp")], mine, state="07")
        assert port in found
        assert doctor.bound_ports([Path("/proc/net/udp")], set(), state="07") == set()
    assert doctor.ports_check(port, {port}, set(), "quic").status == "ok"
    assert doctor.ports_check(port, set(), set(), "auto").status == "fail"
    assert doctor.ports_check(port, {port}, set(), "auto").status == "warn"


def test_space_and_transfer_checks(tmp_path: Path) -> None:
    assert doctor.space_check(tmp_path).status in ("ok", "warn")
    assert doctor.space_check(tmp_path / "gone").status == "fail"
    capped = c.FinishedEvent(
        game_id="g", ok=True, bytes=100 << 20, seconds=10, peers_used=["A", "B"]
    )
    assert "--max-download" in doctor.transfer_check(capped, max_download=10 << 20).summary
    single = c.FinishedEvent(game_id="g", ok=True, bytes=100 << 20, seconds=1, peers_used=["A"])
    assert "one source" in doctor.transfer_check(single, None).summary


def test_daemon_and_cli_agree_on_the_default_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lanpeer_cli.client import default_socket as cli_default

    from lanpeer.config import default_socket as daemon_default

    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert daemon_default() == cli_default() == runtime / "lanpeer" / "control.sock"
    runtime.chmod(0o755)  # not private: both ignore it and fall back to the per-uid tmp dir
    assert daemon_default() == cli_default() != runtime / "lanpeer" / "control.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert daemon_default() == cli_default()
