"""The process guard of ``tests/conftest.py`` refuses processes, not imports.

A fast test that is the first to import ``lanpeer.install`` imports libarchive-c, whose
``ctypes.util.find_library`` runs ``ldconfig -p``; run alone, such a test was refused by the
guard. The root conftest imports libarchive before any guard is installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: A fast test whose body is the first to import lanpeer.install (through lanpeer.download).
LAZY_IMPORTER = (
    "tests/daemon/test_resume.py::"
    "test_resume_record_keeps_then_install_and_old_records_mean_no_install"
)


@pytest.mark.process  # runs pytest in a child process
def test_a_fast_test_that_first_imports_libarchive_passes_alone() -> None:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", LAZY_IMPORTER]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "1 passed" in done.stdout, done.stdout[-3000:]
