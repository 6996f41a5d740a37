"""`lanpeerd demo` end to end: three real daemons, a download from two seeders, cleanup."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.process  # starts processes (see tests/conftest.py)


def _parts_missing() -> str | None:
    try:
        import lanpeer.download
        import lanpeer.install
        import lanpeer.library.samples
        import lanpeer.net.node  # noqa: F401
    except ModuleNotFoundError as exc:
        return f"daemon part not built in yet: {exc.name}"
    return None


@pytest.mark.skipif(_parts_missing() is not None, reason=str(_parts_missing()))
def test_demo_downloads_from_two_seeders_installs_and_cleans_up() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lanpeer.main", "demo", "--size", "32"],
        capture_output=True, text=True, timeout=90, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    summary = re.search(
        r"summary: ([\d,]+) bytes .* downloaded in ([\d.]+) s = ([\d.]+) MB/s, "
        r"installed in ([\d.]+) s",
        out,
    )
    assert summary is not None, out
    assert int(summary.group(1).replace(",", "")) > 32 << 20
    assert float(summary.group(4)) > 0  # the install is timed apart from the download
    assert "peers used: 2 (" in out
    assert "installed" in out
    tmp = re.search(r"in (/\S+lanpeer-demo-\S+)", out)
    assert tmp is not None
    assert not Path(tmp.group(1)).exists()
    assert "cleaned up" in out
