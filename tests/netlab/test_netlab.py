"""Smoke tests of the lab itself: unicast and multicast UDP cross the bridge; cut/heal work."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest
from lab import Host, NetLab, unavailable_reason

pytestmark = [pytest.mark.process, pytest.mark.netns]

GROUP = "239.255.213.1"  # administratively scoped; not mDNS, so nothing else answers
PORT = 47699

# Prints "ready" once bound, then one JSON line per datagram; exits on "last" or after 10 s.
RECEIVER = """
import json, socket, struct, sys
group, port, local = sys.argv[1], int(sys.argv[2]), sys.argv[3]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("0.0.0.0", port))
mreq = struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(local))
sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
sock.settimeout(10)
print("ready", flush=True)
while True:
    data, (source, _) = sock.recvfrom(2048)
    print(json.dumps({"data": data.decode(), "from": source}), flush=True)
    if data == b"last":
        break
"""

SENDER = """
import socket, sys
port = int(sys.argv[1])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for pair in sys.argv[2:]:
    address, text = pair.split("=", 1)
    sock.sendto(text.encode(), (address, port))
"""


def start_receiver(lab: NetLab, host: Host) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-c", RECEIVER, GROUP, str(PORT), host.address]
    receiver = lab.start(host, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert receiver.stdout is not None
    assert receiver.stdout.readline() == b"ready\n"  # bounded: the receiver exits within 10 s
    return receiver


def send(lab: NetLab, host: Host, *datagrams: tuple[str, str]) -> None:
    lab.on(host, [sys.executable, "-c", SENDER, str(PORT), *(f"{a}={t}" for a, t in datagrams)])


def received(receiver: subprocess.Popen[bytes]) -> list[dict[str, str]]:
    out, err = receiver.communicate(timeout=15)
    assert receiver.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


def test_unicast_and_multicast_cross_the_bridge(netlab: Callable[..., NetLab]) -> None:
    lab = netlab(2)
    h1, h2 = lab.hosts
    receiver = start_receiver(lab, h2)
    send(lab, h1, (h2.address, "unicast"), (GROUP, "multicast"), (h2.address, "last"))
    assert received(receiver) == [
        {"data": "unicast", "from": h1.address},
        {"data": "multicast", "from": h1.address},
        {"data": "last", "from": h1.address},
    ]


@pytest.mark.parametrize("fault", ["cut", "loss"])
def test_fault_drops_and_heal_restores(netlab: Callable[..., NetLab], fault: str) -> None:
    lab = netlab(2)
    h1, h2 = lab.hosts
    receiver = start_receiver(lab, h2)
    send(lab, h1, (h2.address, "before"))  # also fills h1's ARP cache: nothing waits on ARP
    if fault == "cut":
        lab.cut(h2)
    else:
        lab.loss(h1, 100)  # every frame h1 sends is dropped on the bridge
    send(lab, h1, *[(h2.address, "during-fault"), (GROUP, "during-fault")] * 5)
    lab.heal(h2 if fault == "cut" else h1)
    send(lab, h1, (h2.address, "last"))
    assert [d["data"] for d in received(receiver)] == ["before", "last"]


def test_teardown_leaves_no_namespace(netlab: Callable[..., NetLab]) -> None:
    lab = netlab(1)
    lab.loss(lab.hosts[0], 50)
    lab.rate(lab.hosts[0], "50mbit")
    lab.down()
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, check=True).stdout
    assert lab.prefix.encode() not in listing


def test_without_root_the_reason_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert "needs root" in (unavailable_reason() or "")
