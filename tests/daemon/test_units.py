"""In-process tests of the daemon's pure pieces: config, views, events, doctor checks."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lanpeer_proto import control as c

from lanpeer import doctor
from lanpeer.control import views
from lanpeer.control.events import EventHub
from lanpeer.control.server import error_message
from lanpeer.errors import ConflictError, LanpeerError, UnknownGameError


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
    hashed_bytes: int = 0  # LocalGame's hashing progress
    hash_total: int = 0
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
    """A healthy host: flags 0x1003 (never IFF_RUNNING in sysfs) and operstate up (issue 13)."""
    devices = (("lo", 0x9, "unknown", "1"), ("eth0", 0x1003, "up", "1"),
               ("wlan0", 0x1003, "down", None), ("br0", 0x1003, "unknown", "1"),
               ("tun0", 0x1003, "unknown", "0"), ("dummy0", 0x83, "up", "1"))  # fmt: skip
    for name, flags, operstate, carrier in devices:
        (tmp_path / name).mkdir()
        (tmp_path / name / "flags").write_text(f"{flags:#x}\n")
        (tmp_path / name / "operstate").write_text(operstate + "\n")
        if carrier is not None:
            (tmp_path / name / "carrier").write_text(carrier + "\n")
    check = doctor.interfaces_check(tmp_path)
    assert check.status == "ok"
    assert check.summary == "multicast-capable and up: br0, eth0"
    for name in ("eth0", "br0"):
        (tmp_path / name / "operstate").write_text("down\n")
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


def test_space_and_transfer_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "LOW_SPACE", 0)  # any free space is enough
    assert doctor.space_check(tmp_path).status == "ok"
    monkeypatch.setattr(doctor, "LOW_SPACE", 1 << 62)  # no disk has this much free
    low = doctor.space_check(tmp_path)
    assert (low.status, low.hint) == ("warn", "large games will not fit")
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


def test_peers_check_names_static_peers_that_are_not_connected() -> None:
    up = Peer("A", {}, address=("10.0.0.1", 47600))
    check = doctor.peers_check([up], [("10.0.0.1", 47600), ("10.0.0.2", 47600)], 47600)
    assert check.status == "warn"
    assert "10.0.0.2:47600" in check.summary
    assert "10.0.0.1:47600" not in check.summary.split("not connected:")[1]
    assert doctor.peers_check([up], [("10.0.0.1", 47600)], 47600).status == "ok"
    assert doctor.peers_check([], [], 47600).status == "warn"


def test_lanpeerd_help_lists_every_flag_of_the_spec(capsys: pytest.CaptureFixture[str]) -> None:
    from lanpeer.main import main

    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    flags = ["--games", "--state", "--socket", "--bind", "--port", "--name", "--peer",
             "--no-mdns", "--party-key", "--max-upload", "--max-download", "--config"]  # fmt: skip
    assert [flag for flag in flags if flag not in text] == []


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="chown needs root")
def test_socket_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    import os

    from lanpeer.control.server import prepare_socket_dir

    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(LanpeerError, match="belongs to uid 65534"):
        prepare_socket_dir(theirs)
    mine = tmp_path / "new" / "lanpeer"
    prepare_socket_dir(mine)
    assert oct(mine.stat().st_mode & 0o777) == "0o700"


def test_firewall_reading_of_an_nft_ruleset() -> None:
    chain = {"family": "inet", "table": "filter", "name": "input", "hook": "input"}
    drop_rule = {"family": "inet", "table": "filter", "chain": "input",
                 "expr": [{"match": {}}, {"drop": None}]}  # fmt: skip
    assert doctor.firewall_from_ruleset({"nftables": []}, "x").status == "ok"
    accepting = {"nftables": [{"chain": {**chain, "policy": "accept"}}]}
    assert doctor.firewall_from_ruleset(accepting, "x").status == "ok"
    dropping = {"nftables": [{"chain": {**chain, "policy": "drop"}}, {"rule": drop_rule}]}
    check = doctor.firewall_from_ruleset(dropping, "allow UDP 47600")
    assert check.status == "warn"
    assert "policy drop on input" in check.summary
    assert check.hint == "allow UDP 47600"


def test_mdns_check_follows_the_node_status() -> None:
    from lanpeer.net.dialling import MdnsStatus

    assert doctor.mdns_check(None).status == "info"  # --no-mdns
    no_lan = MdnsStatus(running=False, own_advert_seen=False, advertised_for=None)
    assert doctor.mdns_check(no_lan).status == "warn"
    seen = MdnsStatus(running=True, own_advert_seen=True, advertised_for=1.0)
    assert doctor.mdns_check(seen).status == "ok"
    probing = MdnsStatus(running=True, own_advert_seen=False, advertised_for=None)
    young = MdnsStatus(running=True, own_advert_seen=False, advertised_for=1.0)
    assert doctor.mdns_check(probing).status == doctor.mdns_check(young).status == "info"
    lost = MdnsStatus(running=True, own_advert_seen=False, advertised_for=60.0)
    check = doctor.mdns_check(lost)
    assert (check.status, "5353" in (check.hint or "")) == ("warn", True)
