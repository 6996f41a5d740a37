"""A private avahi-daemon inside one lab host, for checking lanpeerd's mDNS adverts.

Owns the dbus-daemon (private bus socket, allow-all policy) and avahi-daemon (IPv4, eth0 only,
publishing off) started inside the browsing host's namespace, with avahi's fixed pid dir on a
private tmpfs (``unshare -m``) so no other avahi on the machine is touched. Never starts
anything in the root network namespace; the lab kills both at teardown.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.scenarios.harness import wait_until

PACKAGES = "avahi-daemon avahi-utils dbus"

BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

AVAHI_CONF = """[server]
use-ipv4=yes
use-ipv6=no
allow-interfaces=eth0
enable-dbus=yes
[wide-area]
enable-wide-area=no
[publish]
disable-publishing=yes
"""


def missing() -> str | None:
    for tool in ("avahi-daemon", "avahi-browse", "dbus-daemon"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install {PACKAGES})"
    return None


def start(world: Any, peer: Any, workdir: Path) -> dict[str, str]:
    """Start dbus + avahi in ``peer``'s namespace; returns the env for ``avahi-browse``."""
    workdir.mkdir(parents=True, exist_ok=True)
    bus = workdir / "bus.sock"
    (workdir / "bus.conf").write_text(BUS_CONF.format(socket=bus))
    (workdir / "avahi.conf").write_text(AVAHI_CONF)
    env = {"DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={bus}", "PATH": "/usr/sbin:/usr/bin:/bin"}
    avahi = (
        "mkdir -p /run/avahi-daemon && mount -t tmpfs none /run/avahi-daemon && "
        f"exec avahi-daemon -f {workdir / 'avahi.conf'} --no-chroot --no-drop-root --no-rlimits"
    )
    with (workdir / "daemons.log").open("ab") as log:
        quiet: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": log}
        world.run_in(peer, ["dbus-daemon", f"--config-file={workdir / 'bus.conf'}", "--nofork"],
                     env=env, **quiet)  # fmt: skip
        # avahi-daemon exits at once if the bus is not there yet.
        wait_until(bus.exists, timeout=10, what="the private D-Bus socket", interval=0.05)
        world.run_in(peer, ["unshare", "-m", "sh", "-c", avahi], env=env, **quiet)
    return env


def browse(world: Any, peer: Any, env: dict[str, str], service: str) -> str:
    """One ``avahi-browse -rpt`` pass (resolve, parsable, terminate) inside ``peer``."""
    done = world.run_in(peer, ["avahi-browse", "-rpt", service], env=env,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    out, _ = done.communicate(timeout=15)
    return str(out.decode(errors="replace"))
