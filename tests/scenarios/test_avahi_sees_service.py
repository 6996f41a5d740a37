"""Debian's avahi (a second, independent mDNS implementation) sees lanpeerd's service.

Scenario (netns lab only, needs avahi-daemon + avahi-utils): host a runs lanpeerd with mDNS;
host b runs a private avahi-daemon. ``avahi-browse -rpt _lanpeer._udp`` on b resolves a's
service with a's address, port 47600 and TXT records id (= a's peer_id), pv, rev and name.
"""

from __future__ import annotations

import pytest

from tests.scenarios import avahi
from tests.scenarios.harness import wait_until

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)


def test_avahi_browse_resolves_lanpeerd(world, tmp_path) -> None:
    reason = avahi.missing()
    if reason is not None:
        pytest.skip(reason)
    lan = world(2, discovery="mdns")
    lan.require_lab("avahi in its own namespace")
    a, b = lan.add("a"), lan.add("b")
    lan.start(a)
    peer_id = a.status()["peer_id"]
    env = avahi.start(lan, b, tmp_path / "avahi")

    outputs: list[str] = []

    def resolved() -> str | None:
        outputs.append(avahi.browse(lan, b, env, "_lanpeer._udp"))
        lines = [line for line in outputs[-1].splitlines()
                 if line.startswith("=") and peer_id in line]  # fmt: skip
        return lines[0] if lines else None

    try:
        line = wait_until(resolved, timeout=30, what="avahi-browse to resolve a's service")
    except AssertionError as exc:
        daemons = (tmp_path / "avahi" / "daemons.log").read_text(errors="replace")
        raise AssertionError(
            f"{exc}\nlast browse: {outputs[-1:]}\navahi/dbus log:\n{daemons}"
            f"\n--- a log ---\n{a.log_tail(20)}"
        ) from None
    fields = line.split(";")
    assert fields[2] == "IPv4"
    assert fields[4] == "_lanpeer._udp"
    assert fields[7] == a.address
    assert fields[8] == "47600"
    for key in (f'"id={peer_id}"', '"pv=', '"rev=', '"name=a"'):
        assert key in fields[9], fields[9]
