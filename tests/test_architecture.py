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
import fnmatch
import json
import shutil
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


# ---------------------------------------------------------------- lanpeer's own layering
#
# 4. Source (AST of every ``lanpeer`` file, imports at any depth except under
#    ``if TYPE_CHECKING:``): the graph of lanpeer modules has no cycle. An edge goes to the
#    module an import names (``from lanpeer.a import b`` names ``lanpeer.a.b`` when that is a
#    module, else ``lanpeer.a``); the parent packages Python also runs are not edges, so a
#    package ``__init__`` re-exporting its submodules is no cycle by itself.
# 5. Source: each third-party I/O library is imported only by its glue (``THIRD_PARTY_OWNERS``).

THIRD_PARTY_OWNERS = {
    # The QUIC glue, named one by one: endpoints, one connection, the internals it reads.
    "aioquic": ("lanpeer.net.quic", "lanpeer.net.quic_connection", "lanpeer.net.quic_compat"),
    "zeroconf": ("lanpeer.net.discovery",),
    "watchdog": ("lanpeer.library.watcher",),
    "libarchive": ("lanpeer.install.archive",),
    "aiohttp": ("lanpeer.web", "lanpeer.web.*", "lanpeer.share", "lanpeer.share.*"),
}
LANPEER_ROOT = Path(__file__).resolve().parents[1] / "lanpeer"


def module_files(root: Path) -> dict[str, Path]:
    """Module name -> file, for the package directory ``root`` (``.../lanpeer``)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Import statements at any depth, except those only a type checker runs."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return found


def _named_modules(module: str, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:  # relative: resolve against this module's package
        package = module.split(".")[: -node.level] if module in known else module.split(".")
        base = ".".join([*package, base] if base else package)
    names = {f"{base}.{alias.name}" for alias in node.names}
    return {name if name in known else base for name in names}


def import_graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(lanpeer module -> lanpeer modules it imports, module -> third-party top-level names)."""
    files = module_files(root)
    known = set(files)
    inner: dict[str, set[str]] = {}
    outer: dict[str, set[str]] = {}
    for module, path in files.items():
        named: set[str] = set()
        for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
            named |= _named_modules(module, node, known)
        inner[module] = {name for name in named if name in known and name != module}
        outer[module] = {name.split(".")[0] for name in named if name.split(".")[0] != "lanpeer"}
    return inner, outer


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def stray_imports(outer: dict[str, set[str]]) -> list[str]:
    """``module imports library`` for every third-party import outside the library's glue."""
    return sorted(
        f"{module} imports {library}"
        for module, libraries in outer.items()
        for library, owners in THIRD_PARTY_OWNERS.items()
        if library in libraries and not any(fnmatch.fnmatchcase(module, o) for o in owners)
    )


def test_lanpeer_modules_import_without_cycles() -> None:
    inner, _ = import_graph(LANPEER_ROOT)
    assert len(inner) > 50  # the whole tree was read
    assert import_cycles(inner) == []


def test_each_io_library_is_imported_only_by_its_glue() -> None:
    _, outer = import_graph(LANPEER_ROOT)
    assert stray_imports(outer) == []
    for library, owners in THIRD_PARTY_OWNERS.items():
        if library != "aiohttp":  # its packages (web, share) are being built elsewhere
            users = [m for m, libs in outer.items() if library in libs]
            assert users, library
            assert all(any(fnmatch.fnmatchcase(m, o) for o in owners) for m in users)


def _cycles_with(tmp_path: Path, edits: dict[str, str]) -> list[list[str]]:
    copy = tmp_path / "lanpeer"
    shutil.copytree(LANPEER_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for rel, line in edits.items():
        path = copy / rel
        path.write_text(path.read_text() + f"\n{line}\n")
    return import_cycles(import_graph(copy)[0])


def test_the_cycle_check_fails_on_an_added_cycle(tmp_path: Path) -> None:
    baseline = import_cycles(import_graph(LANPEER_ROOT)[0])
    relative = _cycles_with(tmp_path / "a", {
        "ratelimit.py": "from . import errors  # relative imports count too",
        "errors.py": "from lanpeer import ratelimit",
    })  # fmt: skip
    assert ["lanpeer.errors", "lanpeer.ratelimit"] in relative
    late = _cycles_with(tmp_path / "b", {
        "errors.py": "def late():\n    from lanpeer.daemon import Daemon  # noqa",
    })  # fmt: skip
    assert any({"lanpeer.daemon", "lanpeer.errors"} <= set(group) for group in late)
    typing_only = _cycles_with(tmp_path / "c", {
        "errors.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from lanpeer.daemon import Daemon  # noqa",
    })  # fmt: skip
    assert typing_only == baseline  # a type checker's import is no runtime cycle


def test_the_glue_check_fails_on_a_stray_import(tmp_path: Path) -> None:
    copy = tmp_path / "lanpeer"
    shutil.copytree(LANPEER_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for rel, line in {
        "library/index.py": "import aioquic.quic  # noqa",
        "download/plan.py": "def f():\n    from zeroconf import Zeroconf  # noqa",
    }.items():
        (copy / rel).write_text((copy / rel).read_text() + f"\n{line}\n")
    (copy / "net" / "quic_compat.py").write_text("import aioquic\n")  # glue: allowed
    (copy / "web").mkdir(exist_ok=True)
    (copy / "web" / "__init__.py").write_text("import aiohttp\n")  # allowed
    _, outer = import_graph(copy)
    assert stray_imports(outer) == [
        "lanpeer.download.plan imports zeroconf",
        "lanpeer.library.index imports aioquic",
    ]


# ---------------------------------------------------------------- task ownership
#
# 6. Source (AST of every ``lanpeer`` file): a task is started only through a task group:
#    ``NAME.create_task(...)`` where NAME is, in the same module, the target of
#    ``async with TaskGroup() as NAME``, assigned ``TaskGroup()``, or annotated (variable,
#    attribute or parameter) with a type naming ``TaskGroup``. Any other ``create_task``
#    (``asyncio.create_task``, ``loop.create_task``, ``get_running_loop().create_task``) and
#    every ``ensure_future`` is a bare task, and there are none (no allowlist: the last
#    bare tasks, the chunk scheduler's, now belong to its ``OwnedTasks``).
#    ``OwnedTasks`` (lanpeer.tasks) is how an object owns tasks for its lifetime and
#    ``wait_first`` how two waits race. Not asserted: tasks that ``asyncio.gather`` or
#    ``asyncio.wait_for`` make of coroutines they await in place (awaited where started).


def _task_group_names(tree: ast.AST) -> set[str]:
    """Expressions (as written) that name a task group somewhere in the module."""

    def is_task_group(node: ast.AST | None) -> bool:
        return node is not None and "TaskGroup" in ast.unparse(node)

    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.withitem) and node.optional_vars is not None:
            if isinstance(node.context_expr, ast.Call) and is_task_group(node.context_expr.func):
                names.add(ast.unparse(node.optional_vars))
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            if is_task_group(node.value.func):
                names.update(ast.unparse(target) for target in node.targets)
        elif isinstance(node, ast.AnnAssign) and is_task_group(node.annotation):
            names.add(ast.unparse(node.target))
        elif isinstance(node, ast.arg) and is_task_group(node.annotation):
            names.add(node.arg)
    return names


def bare_tasks(root: Path) -> list[tuple[str, int, str]]:
    """(module, line, callee as written) of every task started outside a task group."""
    found = []
    for module, path in module_files(root).items():
        tree = ast.parse(path.read_text(), str(path))
        groups = _task_group_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            grouped = isinstance(func, ast.Attribute) and ast.unparse(func.value) in groups
            if name == "ensure_future" or (name == "create_task" and not grouped):
                found.append((module, node.lineno, ast.unparse(func)))
    return sorted(found)


def test_every_task_is_started_by_a_task_group() -> None:
    assert [f"{m}:{line} {callee}" for m, line, callee in bare_tasks(LANPEER_ROOT)] == []


def test_the_task_check_fails_on_an_added_bare_task(tmp_path: Path) -> None:
    copy = tmp_path / "lanpeer"
    shutil.copytree(LANPEER_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    added = {
        "library/index.py": "async def f():\n    asyncio.create_task(g())  # noqa",
        "download/plan.py": "def f(loop):\n    loop.create_task(g())  # noqa",
        "net/peers.py": "def f():\n    asyncio.get_running_loop().create_task(g())  # noqa",
        "ratelimit.py": "from asyncio import ensure_future\ndef f():\n    ensure_future(g())",
        # Allowed: task groups, named by ``async with``, an annotation or an assignment.
        "errors.py": "async def f(group: asyncio.TaskGroup):\n    group.create_task(g())\n"
        "    async with asyncio.TaskGroup() as tg:\n        tg.create_task(g())",
    }
    for rel, text in added.items():
        path = copy / rel
        path.write_text(path.read_text() + f"\n{text}\n")
    found = [f"{module} {callee}" for module, _line, callee in bare_tasks(copy)]
    assert found == [
        "lanpeer.download.plan loop.create_task",
        "lanpeer.library.index asyncio.create_task",
        "lanpeer.net.peers asyncio.get_running_loop().create_task",
        "lanpeer.ratelimit ensure_future",
    ]


# ------------------------------------------------------------------ module size (STYLE.md)

#: STYLE.md: modules "none above ~500" lines. Split along a seam rather than raise this.
MAX_MODULE_LINES = 500
REPO_ROOT = LANPEER_ROOT.parent


def oversized_modules(repo: Path) -> list[str]:
    """``path: lines`` of every package module above ``MAX_MODULE_LINES``, by repo path."""
    found = []
    for package_dir in (repo / "lanpeer", repo / "proto" / "src", repo / "cli" / "src"):
        for path in sorted(package_dir.rglob("*.py")):
            lines = len(path.read_text().splitlines())
            if lines > MAX_MODULE_LINES:
                found.append(f"{path.relative_to(repo).as_posix()}: {lines}")
    return found


def test_no_module_is_above_the_style_size() -> None:
    found = oversized_modules(REPO_ROOT)
    assert found == [], "split these along a seam (STYLE.md: modules of ~500 lines at most)"
