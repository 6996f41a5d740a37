"""Import rules of SPEC §2, checked in fresh interpreters and in the source.

What is asserted, precisely:

1. Runtime (fresh ``python -I`` per package, every submodule imported via pkgutil):
   after importing ``lanpeer_proto`` and all its submodules, none of asyncio, aioquic,
   zeroconf, watchdog, cryptography, lanpeer or lanpeer_cli is in ``sys.modules``.
   After importing ``lanpeer_cli`` and all its submodules, no ``lanpeer`` / ``lanpeer.*``
   is in ``sys.modules``.
2. Runtime, who imported it: ``time``, ``socket`` and ``threading`` cannot simply be
   absent (the interpreter itself loads ``time``; pydantic loads ``socket`` and
   ``threading`` via email/importlib.metadata). An import hook in the fresh interpreter
   records the module whose code first imported each of them: it is never a
   ``lanpeer_proto`` module. (A later import of an already loaded module does not
   reach the hook; point 3 covers that.)
3. Source (AST of every ``lanpeer_proto`` file): no import statement, at any depth,
   names time, socket, asyncio, selectors, ssl, threading, subprocess, aioquic,
   zeroconf, watchdog, cryptography, lanpeer or lanpeer_cli (this also covers ``time``,
   which is loaded before any hook can see it). ``lanpeer_cli`` sources: no
   ``import lanpeer`` / ``from lanpeer`` at any depth.
Not asserted: calls such as ``open()`` or ``__import__`` (no import statement to see).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import lanpeer_cli
import lanpeer_proto
import pytest

RUNTIME_FORBIDDEN_IN_PROTO = {
    "asyncio", "aioquic", "zeroconf", "watchdog", "cryptography", "lanpeer", "lanpeer_cli",
}  # fmt: skip
SOURCE_FORBIDDEN_IN_PROTO = RUNTIME_FORBIDDEN_IN_PROTO | {
    "time", "socket", "selectors", "ssl", "threading", "subprocess",
}  # fmt: skip

_PROBE = """
import importlib, json, pkgutil, sys
WATCH = set(sys.argv[2].split(","))
importers = {}

class RecordImporter:
    # Records which module's code first imported a watched module; finds nothing itself.
    def find_spec(self, name, path=None, target=None):
        root = name.split(".")[0]
        if root in WATCH and root not in importers:
            frame = sys._getframe(1)
            while frame and frame.f_code.co_filename.startswith("<frozen"):  # skip import machinery
                frame = frame.f_back
            importers[root] = frame.f_globals.get("__name__", "?") if frame else "?"
        return None

sys.meta_path.insert(0, RecordImporter())
package = importlib.import_module(sys.argv[1])
names = [package.__name__]
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
    names.append(info.name)
import wave  # the hook's self-check: must be recorded as imported by __main__
print(json.dumps({"imported": names, "loaded": sorted(sys.modules), "importers": importers}))
"""


def fresh_import(package: str) -> tuple[list[str], set[str], dict[str, str]]:
    """Import ``package`` and every submodule in a new interpreter.

    Returns the submodules imported, every module loaded, and for each module of
    SOURCE_FORBIDDEN_IN_PROTO loaded after start-up, the module that imported it.
    """
    watched = {*SOURCE_FORBIDDEN_IN_PROTO, "wave"}
    result = subprocess.run(
        [sys.executable, "-I", "-c", _PROBE, package, ",".join(watched)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(result.stdout)
    return report["imported"], set(report["loaded"]), report["importers"]


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def imported_names(source_file: Path) -> set[str]:
    """Every module named by an import statement anywhere in the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source_file.read_text(), str(source_file))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sources(package: object) -> list[Path]:
    files = sorted(Path(next(iter(package.__path__))).rglob("*.py"))  # type: ignore[attr-defined]
    assert files
    return files


@pytest.mark.process
def test_lanpeer_proto_loads_no_io_or_daemon_packages() -> None:
    imported, loaded, importers = fresh_import("lanpeer_proto")
    assert {"lanpeer_proto.codec", "lanpeer_proto.session"} <= set(imported)
    assert top_level(loaded) & RUNTIME_FORBIDDEN_IN_PROTO == set()
    by_proto = {m: who for m, who in importers.items() if who.startswith("lanpeer_proto")}
    assert by_proto == {}
    assert importers["wave"] == "__main__"  # the hook works


@pytest.mark.process
def test_lanpeer_cli_never_loads_lanpeer() -> None:
    imported, loaded, _ = fresh_import("lanpeer_cli")
    assert "lanpeer_cli.main" in imported
    assert "lanpeer" not in top_level(loaded)


@pytest.mark.parametrize("path", sources(lanpeer_proto), ids=lambda p: p.name)
def test_lanpeer_proto_source_imports_nothing_forbidden(path: Path) -> None:
    roots = top_level(imported_names(path))
    assert roots & SOURCE_FORBIDDEN_IN_PROTO == set(), path


@pytest.mark.parametrize("path", sources(lanpeer_cli), ids=lambda p: p.name)
def test_lanpeer_cli_source_never_imports_lanpeer(path: Path) -> None:
    assert "lanpeer" not in top_level(imported_names(path)), path
