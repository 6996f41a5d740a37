"""Matrix row 49: random and hostile request lines against one live lanpeerd.

Every line gets a well-formed answer line (or the connection closes), the daemon keeps serving,
and nothing appears outside its game root.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.daemon.harness import Lanpeerd, ask_raw

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)

# add_peer is left out: a random host name would be resolved, and tests send nothing off-host.
COMMANDS = ["status", "peers", "games", "download", "install", "update", "uninstall", "remove",
            "cancel", "ops", "rescan", "doctor", "pin", "unpin", "follow", "unfollow",
            "download_all", "nope", ""]  # fmt: skip
NASTY_IDS = ["../../etc", "/abs", "a\x00b", "A" * 200, "con", "..", "x/y", "C:\\x", 7, None]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
requests = st.fixed_dictionaries(
    {"cmd": st.sampled_from(COMMANDS)},
    optional={
        "game_id": st.sampled_from(NASTY_IDS) | st.text(max_size=70),
        "v": st.integers(-2, 3),
        "wait": st.just(False),
        "host": st.text(max_size=10),
        "port": st.integers(-5, 70000),
        "version": st.text(max_size=10),
        "peer": st.text(max_size=10),
        "from_peer": st.text(max_size=10),
        "match": st.text(max_size=10),
        "extra": json_values,
    },
)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lanpeerd]:
    daemon = Lanpeerd(tmp_path_factory.mktemp("fuzz")).start()
    yield daemon
    daemon.kill()


def _answer(daemon: Lanpeerd, line: bytes) -> dict | None:
    try:
        raw = ask_raw(daemon.socket, line)
    except (TimeoutError, ConnectionError):
        return None
    return json.loads(raw) if raw else None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests)
def test_structured_garbage_gets_typed_answers(target: Lanpeerd, request: dict) -> None:
    if request["cmd"] in ("shutdown",):
        return
    answer = _answer(target, json.dumps(request).encode() + b"\n")
    assert answer is not None
    assert answer["type"] in ("result", "error")
    if answer["type"] == "error":
        assert answer["code"] in {"bad_request", "unsupported_version", "unknown_game",
                                  "unknown_peer", "conflict", "failed",
                                  "not_available"}  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=300))
def test_random_bytes_never_hurt_the_daemon(target: Lanpeerd, data: bytes) -> None:
    answer = _answer(target, data.replace(b"\n", b" ") + b"\n")
    if answer is not None:
        assert answer["type"] == "error"


def test_daemon_still_serves_and_wrote_nothing_outside_its_root(target: Lanpeerd) -> None:
    assert json.loads(ask_raw(target.socket, b'{"cmd": "status"}\n'))["type"] == "result"
    assert target.proc is not None
    assert target.proc.poll() is None
    outside = {p.name for p in target.home.iterdir()}
    assert outside <= {"games", "state", "run", "lanpeerd.log"}
    assert not Path("/etc/lanpeer").exists()
