"""The web UI's pure parts: which Host headers are ours, the token file, the bounded history."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from lanpeer_proto.control import LibraryChangedEvent

from lanpeer.web.access import TOKEN_FILE, host_is_ours, load_or_create_token
from lanpeer.web.live import EncodedEvents, Throughput


@pytest.mark.parametrize(
    ("host", "ours"),
    [
        ("127.0.0.1:47680", True),
        ("localhost:47680", True),
        ("LOCALHOST:47680", True),
        ("[::1]:47680", True),
        ("192.168.1.5:47680", True),  # an IP literal cannot be a rebound name
        ("127.0.0.1:47681", False),
        ("127.0.0.1", False),
        ("evil.example:47680", False),
        ("127.0.0.1.nip.io:47680", False),
        ("localhost.evil.example:47680", False),
        ("", False),
        (None, False),
    ],
)
def test_host_is_ours(host: str | None, ours: bool) -> None:
    assert host_is_ours(host, 47680) is ours


def test_the_token_is_made_once_private_and_remade_when_exposed(tmp_path: Path) -> None:
    token = load_or_create_token(tmp_path)
    path = tmp_path / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(token) >= 32
    assert load_or_create_token(tmp_path) == token  # kept across restarts: bookmarks work
    path.chmod(0o644)  # someone made it readable: it is no secret any more
    fresh = load_or_create_token(tmp_path)
    assert fresh != token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_throughput_keeps_only_the_last_samples() -> None:
    history = Throughput(kept=3)
    for rate in range(10):
        history.add(float(rate), 0.0)
    assert [down for _, down, _ in history.samples] == [7, 8, 9]


def test_each_event_is_encoded_once() -> None:
    encoded = EncodedEvents(kept=2)
    first = LibraryChangedEvent(library_rev=1)
    text = encoded.text(first)
    assert text == '{"type":"event","event":' + first.model_dump_json() + "}"
    assert encoded.text(first) is text
    for rev in range(2, 5):
        encoded.text(LibraryChangedEvent(library_rev=rev))
    assert encoded.text(first) is not text  # forgotten (bounded), encoded again
    assert encoded.text(first) == text
