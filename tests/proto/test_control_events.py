"""Control-socket events of the keep list (issue 16, SPEC §9a): ``keep`` lines for pin,
unpin, follow and unfollow round-trip with their stable fields; malformed ones are refused."""

from __future__ import annotations

import json

import pytest
from lanpeer_proto import control as c
from lanpeer_proto.errors import RemoteProtocolError

PEER = "P" * 52

KEEP_EVENTS = [
    c.KeepEvent(action="pin", game_id="quake", version="1.0"),
    c.KeepEvent(action="unpin", game_id="quake", version="1.0"),
    c.KeepEvent(action="follow", peer_id=PEER, name="lan-box", install=False),
    c.KeepEvent(action="unfollow", peer_id=PEER, name="lan-box"),
]


@pytest.mark.parametrize("event", KEEP_EVENTS, ids=lambda e: e.action)
def test_keep_events_round_trip_as_event_lines(event: c.KeepEvent) -> None:
    line = c.encode_server_message(c.EventMessage(event=event))
    assert line.count(b"\n") == 1
    decoded = c.decode_server_message(line)
    assert isinstance(decoded, c.EventMessage)
    assert decoded.event == event
    fields = json.loads(line)["event"]
    assert fields["event"] == "keep"
    assert set(fields) == {"event", "action", "game_id", "version", "peer_id", "name", "install"}


@pytest.mark.parametrize(
    "event",
    [
        {"event": "keep", "action": "delete", "game_id": "quake"},
        {"event": "keep", "action": "pin", "game_id": "../etc"},
        {"event": "keep"},
    ],
)
def test_a_malformed_keep_event_is_a_protocol_error(event: dict[str, object]) -> None:
    line = json.dumps({"type": "event", "event": event}).encode() + b"\n"
    with pytest.raises(RemoteProtocolError):
        c.decode_server_message(line)
