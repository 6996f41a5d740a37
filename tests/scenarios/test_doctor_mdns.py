"""`peer-cli doctor` tells whether our own mDNS advert comes back, i.e. whether multicast works.

Scenario (netns lab only: the check is about real multicast): hosts a and b run with mDNS;
b's namespace drops UDP 5353 both ways (nftables), as a host firewall would. a's doctor reports
its advert seen (ok); b's reports it missing (warn, with the firewall hint) once the echo wait
has passed, and b still has no peers from mDNS.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.scenarios.harness import Peer, wait_until

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)

BLOCK_MDNS = """table inet lanpeer_test_block_mdns {
  chain out { type filter hook output priority 0; udp dport 5353 drop; }
  chain inp { type filter hook input priority 0; udp dport 5353 drop; }
}
"""


def _mdns(host: Peer) -> dict[str, Any]:
    checks = host.cli("doctor", check=False).doc
    return dict(next(check for check in checks if check["name"] == "mdns"))


def test_doctor_reports_whether_our_advert_comes_back(world) -> None:
    lan = world(2, discovery="mdns")
    lan.require_lab("a multicast firewall in one host")
    a, b = lan.add("a"), lan.add("b")
    rules = lan.tmp / "block-mdns.nft"
    rules.write_text(BLOCK_MDNS)
    blocker = lan.run_in(b, ["nft", "-f", str(rules)])
    assert blocker.wait(timeout=10) == 0
    lan.start()

    seen = wait_until(lambda: (c := _mdns(a))["status"] == "ok" and c, timeout=20,
                      what="a's doctor to see its own advert")  # fmt: skip
    assert "came back" in seen["summary"]
    missing = wait_until(lambda: (c := _mdns(b))["status"] == "warn" and c, timeout=30,
                         what="b's doctor to report its advert missing")  # fmt: skip
    assert "5353" in missing["hint"]
    assert b.peers() == []
