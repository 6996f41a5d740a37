"""A userspace delay line on one lab host's switch port (tc netem is not in this kernel).

Owns re-plumbing host i's port (``v<i>`` off the bridge, a veth ``d<i>``<->``p<i>`` with
``p<i>`` on the bridge) and one stdlib asyncio process in the switch namespace that copies
frames between ``v<i>`` and ``d<i>`` after a fixed delay (research/netns-feasibility.md §5).
Hosts need tx checksum offload off, else re-injected UDP arrives with a partial checksum;
that is done with the SIOCETHTOOL ioctl (no ethtool binary needed). Lab namespaces only.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

# Runs inside the switch namespace: argv = [port, delay_port, delay_seconds].
FORWARDER = r"""
import asyncio, socket, sys
ETH_P_ALL, PACKET_OUTGOING = 3, 4
a_name, b_name, delay = sys.argv[1], sys.argv[2], float(sys.argv[3])

def open_raw(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((name, 0)); s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return s

async def main():
    loop = asyncio.get_running_loop()
    a, b = open_raw(a_name), open_raw(b_name)
    def pump(src, dst):
        while True:
            try:
                frame, addr = src.recvfrom(65535)
            except BlockingIOError:
                return
            if addr[2] != PACKET_OUTGOING:
                loop.call_later(delay, lambda f=frame: dst.send(f))
    loop.add_reader(a.fileno(), pump, a, b)
    loop.add_reader(b.fileno(), pump, b, a)
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

# Runs inside a host namespace: turn off tx checksum offload on eth0 (ETHTOOL_STXCSUM).
TX_CSUM_OFF = r"""
import array, fcntl, socket, struct
SIOCETHTOOL, ETHTOOL_STXCSUM = 0x8946, 0x17
value = array.array("I", [ETHTOOL_STXCSUM, 0])
addr, _ = value.buffer_info()
ifreq = struct.pack("16sP", b"eth0", addr)
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)
"""


def insert(lab: Any, host: Any, delay_ms: float) -> subprocess.Popen[bytes]:
    """Delay every frame to and from ``host`` by ``delay_ms`` (each way); caller kills it."""
    for other in lab.hosts:
        lab.on(other, [sys.executable, "-c", TX_CSUM_OFF])
    port, tap, bridge_end = host.port, f"d{host.index}", f"p{host.index}"
    lab.in_switch(["ip", "link", "set", port, "nomaster"])
    lab.in_switch(["ip", "link", "add", tap, "type", "veth", "peer", "name", bridge_end])
    lab.in_switch(["ip", "link", "set", bridge_end, "master", "br0", "up"])
    lab.in_switch(["ip", "link", "set", tap, "up"])
    lab.in_switch(["ip", "link", "set", port, "up"])
    line = subprocess.Popen(
        ["ip", "netns", "exec", lab.switch, sys.executable, "-c", FORWARDER, port, tap,
         str(delay_ms / 1000)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert line.stdout is not None
    if line.stdout.readline().strip() != b"ready":
        raise RuntimeError("the delay line did not start")
    return line
