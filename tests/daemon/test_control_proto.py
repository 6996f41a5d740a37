"""Sans-IO tests of lanpeer_proto.control: round trips, bounds, malformed lines."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lanpeer_proto import control as c
from lanpeer_proto.errors import ErrorCode, RemoteProtocolError

ALL_REQUESTS = [
    c.StatusRequest(),
    c.PeersRequest(),
    c.GamesRequest(),
    c.DownloadRequest(game_id="quake", version="1.1", install=False, wait=True),
    c.InstallRequest(game_id="quake"),
    c.UpdateRequest(game_id="quake"),
    c.UninstallRequest(game_id="quake"),
    c.RemoveRequest(game_id="quake"),
    c.CancelRequest(game_id="quake"),
    c.OpsRequest(),
    c.WatchRequest(),
    c.RescanRequest(game_id=None),
    c.AddPeerRequest(host="127.0.0.1", port=47600),
    c.DoctorRequest(),
    c.ShutdownRequest(),
    c.ShareRequest(),
]


@pytest.mark.parametrize("request_", ALL_REQUESTS, ids=lambda r: r.cmd)
def test_every_request_round_trips(request_: c._Request) -> None:
    line = c.encode_request(request_)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert c.decode_request(line) == request_


def test_finished_event_carries_the_stable_fields() -> None:
    message = c.EventMessage(
        event=c.FinishedEvent(game_id="quake", ok=True, bytes=10, seconds=1.5, peers_used=["A"])
    )
    decoded = c.decode_server_message(c.encode_server_message(message))
    assert isinstance(decoded, c.EventMessage)
    dumped = decoded.event.model_dump(mode="json")
    for key in ("event", "game_id", "ok", "error", "bytes", "seconds", "peers_used"):
        assert key in dumped


@pytest.mark.parametrize(
    "line",
    [
        b"not json\n",
        b"{}\n",
        b'{"cmd": "launch_missiles"}\n',
        b'{"cmd": "install", "game_id": "../etc"}\n',
        b'{"cmd": "add_peer", "host": "x", "port": 70000}\n',
        b"\xff\xfe\n",
        b"[" * 10_000 + b"]" * 10_000 + b"\n",
    ],
)
def test_malformed_request_raises_remote_protocol_error(line: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        c.decode_request(line)


def test_oversized_request_is_refused_before_parsing() -> None:
    line = b'{"cmd": "status", "pad": "' + b"x" * c.MAX_REQUEST_LINE + b'"}\n'
    with pytest.raises(RemoteProtocolError) as info:
        c.decode_request(line)
    assert info.value.code is ErrorCode.BAD_FRAME


def test_future_control_version_is_refused_with_its_own_code() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        c.decode_request(b'{"v": 99, "cmd": "status"}\n')
    assert c.error_for(info.value).code is c.ControlErrorCode.UNSUPPORTED_VERSION


def test_every_error_code_has_an_exit_code() -> None:
    assert set(c.EXIT_CODES) == set(c.ControlErrorCode)
    assert c.ErrorMessage(code=c.ControlErrorCode.CONFLICT, message="x").exit_code == 5
    assert c.ErrorMessage(code=c.ControlErrorCode.UNKNOWN_GAME, message="x").exit_code == 4


def test_line_splitter_keeps_partial_lines_and_bounds_them() -> None:
    splitter = c.LineSplitter(limit=16)
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\nde\nf") == [b"abc\n", b"de\n"]
    with pytest.raises(RemoteProtocolError):
        splitter.feed(b"x" * 32)


@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_ever_raise_remote_protocol_error(data: bytes) -> None:
    try:
        c.decode_request(data)
    except RemoteProtocolError:
        pass
    try:
        c.decode_server_message(data)
    except RemoteProtocolError:
        pass
