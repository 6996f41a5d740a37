"""doctor tells the truth about game roots (issue 13), through a real daemon and peer-cli."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.daemon.harness import Lanpeerd
from tests.daemon.readonly import ReadOnlyRootLanpeerd, needs_mount

pytestmark = pytest.mark.process


@needs_mount
def test_doctor_fails_a_read_only_game_root(daemons: list[Lanpeerd], tmp_path: Path) -> None:
    daemon = ReadOnlyRootLanpeerd(tmp_path / "ro").start()
    daemons.append(daemon)
    doctor = daemon.cli("doctor")
    assert doctor.rc == 1  # a failed check
    checks = {check["name"]: check for check in doctor.doc}
    root = checks[f"root {daemon.games}"]
    assert root["status"] == "fail"
    assert "read-only" in root["summary"]
    # outside the daemon's mount namespace the root stays writable: nothing leaked
    (daemon.games / "probe").write_text("writable here")
