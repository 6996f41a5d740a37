"""The ``peer-cli`` entry point: global options anywhere, ``--version``, and a quick road.

Scripts poll ``peer-cli --json status`` often; loading typer, rich and the pydantic control
models costs ~0.3 s, far more than the answer. A plain ``--json`` document command (status,
peers, games, ops, doctor, uploads) with no other arguments is answered here with the stdlib:
one request line, one answer line, the same JSON document ``main`` prints. Anything else, and
any answer that is not a plain result (an error, no daemon), goes to ``main``, which then says
exactly what it always says. Never imports typer, rich or pydantic itself.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
from collections.abc import Sequence

from lanpeer_proto.paths import is_game_id

from lanpeer_cli.sockpath import default_socket

GLOBAL_FLAGS = ("--json",)
GLOBAL_OPTIONS = ("--socket",)  # take a value

#: command -> (answer kind, field of the answer that is the document; None: the answer itself)
DOCUMENTS: dict[str, tuple[str, str | None]] = {
    "status": ("status", None),
    "peers": ("peers", "peers"),
    "games": ("games", "games"),
    "ops": ("ops", "ops"),
    "doctor": ("doctor", "checks"),
    "uploads": ("uploads", "uploads"),
}
# = lanpeer_proto.control.MAX_SERVER_LINE (a test checks): an answer line is bounded.
MAX_ANSWER_LINE = 32 << 20
# A status answer is instant; the full client's longer waits apply on the slow road.
QUICK_TIMEOUT = 10.0


def hoist_global_options(argv: Sequence[str]) -> list[str]:
    """``games --json`` -> ``--json games``: global options may come anywhere (SPEC §9a)."""
    hoisted: list[str] = []
    rest: list[str] = []
    items = iter(argv)
    for arg in items:
        if arg == "--":
            rest += [arg, *items]
            break
        if arg in GLOBAL_FLAGS or arg.startswith(tuple(f"{o}=" for o in GLOBAL_OPTIONS)):
            hoisted.append(arg)
        elif arg in GLOBAL_OPTIONS:
            hoisted += [arg, next(items, "")]
        else:
            rest.append(arg)
    return hoisted + rest


#: Commands whose first argument is a game id: TAB completion answers them here.
GAME_COMMANDS = frozenset(
    {"download", "install", "update", "uninstall", "remove", "cancel", "rescan", "game"}
)
#: The variable typer's completion scripts set to what they ask (``complete_bash`` ...).
COMPLETE_ENV = "_PEER_CLI_COMPLETE"


def main(argv: Sequence[str] | None = None) -> None:
    quick = os.environ.get("LANPEER_CLI_QUICK", "1") == "1"
    instruction = os.environ.get(COMPLETE_ENV)
    if quick and instruction:
        code = quick_completion(instruction)
        if code is not None:
            sys.exit(code)
    args = hoist_global_options(sys.argv[1:] if argv is None else argv)
    if args == ["--version"] or args == ["-V"]:
        sys.exit(print_version())
    if quick:
        code = quick_document(args)
        if code is not None:
            sys.exit(code)
    from lanpeer_cli.main import run

    run(args)


def quick_completion(instruction: str) -> int | None:
    """TAB on a game id (bash, zsh, fish): the ids of ``games``, without loading typer (0.5 s
    otherwise). The exit status when answered here; None leaves it to typer.

    The protocol of typer's completion scripts: bash sets ``COMP_WORDS`` and ``COMP_CWORD`` and
    reads one value a line; zsh and fish set ``_TYPER_COMPLETE_ARGS`` (the line up to the
    cursor). zsh reads an ``_arguments`` spec (``_files`` when nothing matches); fish asks
    twice, ``is-args`` (exit 0: values follow, 1: complete files) then ``get-args`` (one value
    a line). Anything but a game id right after its command is left to typer."""
    asked = _completion_words(instruction)
    if asked is None:
        return None
    words, incomplete = asked
    ids = _completed_game_ids(words, incomplete)
    if ids is None:
        return None
    if instruction == "complete_zsh":
        values = "\n".join(f'"{i}"' for i in ids)  # ids need no quoting inside "..."
        print(f"_arguments '*: :(({values}))'" if ids else "_files")
    elif instruction == "complete_fish":
        action = os.environ.get("_TYPER_COMPLETE_FISH_ACTION", "")
        if action == "is-args":
            return 0 if ids else 1
        if action != "get-args":
            return None
        print("\n".join(ids))
    else:
        print("\n".join(ids))
    return 0


def _completion_words(instruction: str) -> tuple[list[str], str] | None:
    """(the words before the one being completed, that word so far), as the shell sent them."""
    if instruction == "complete_bash":
        words = os.environ.get("COMP_WORDS", "").split()
        try:
            cword = int(os.environ.get("COMP_CWORD", ""))
        except ValueError:
            return None
        return words[1:cword], words[cword] if cword < len(words) else ""
    if instruction in ("complete_zsh", "complete_fish"):
        line = os.environ.get("_TYPER_COMPLETE_ARGS", "")
        try:
            words = shlex.split(line)[1:]
        except ValueError:  # an open quote: the full CLI's parser copes
            return None
        if words and not line.endswith(" "):
            return words[:-1], words[-1]
        return words, ""
    return None


def _completed_game_ids(words: list[str], incomplete: str) -> list[str] | None:
    """The game ids starting with ``incomplete`` when ``words`` are a game command (global
    options aside); None when it is not that, or when the daemon gives no list."""
    args = hoist_global_options(words)
    path = os.environ.get("LANPEER_SOCKET") or str(default_socket())
    while args[:1] == ["--json"] or (args[:1] == ["--socket"] and len(args) >= 2):
        if args[0] == "--socket":
            path = args[1]
        args = args[2:] if args[0] == "--socket" else args[1:]
    if len(args) != 1 or args[0] not in GAME_COMMANDS:
        return None
    games = ask_document(path, "games")
    if not isinstance(games, list):
        return None
    ids = [g.get("id") for g in games if isinstance(g, dict)]
    return [i for i in ids if isinstance(i, str) and is_game_id(i) and i.startswith(incomplete)]


def print_version() -> int:
    from importlib.metadata import version

    print(f"peer-cli {version('lanpeer-cli')}")
    return 0


def quick_document(args: list[str]) -> int | None:
    """The exit status when answered here; None hands the command to the full CLI."""
    parsed = _plain_json_document(args)
    if parsed is None:
        return None
    command, path = parsed
    document = ask_document(path, command)
    if document is None:
        return None
    print(json.dumps(document, indent=2), flush=True)
    if command == "doctor" and isinstance(document, list):
        return 1 if any(check.get("status") == "fail" for check in document) else 0
    return 0


def ask_document(path: str, command: str) -> object:
    """The document of ``command`` (one of ``DOCUMENTS``), or None when there is no answer."""
    kind, field = DOCUMENTS[command]
    answer = _ask(path, json.dumps({"v": 1, "cmd": command}).encode() + b"\n")
    if answer is None or answer.get("type") != "result":
        return None
    result = answer.get("result")
    if not isinstance(result, dict) or result.get("kind") != kind:
        return None
    result.pop("kind")
    return result if field is None else result.get(field)


def _plain_json_document(args: list[str]) -> tuple[str, str] | None:
    if "--json" not in args:
        return None
    path = os.environ.get("LANPEER_SOCKET") or str(default_socket())
    command = None
    items = iter(args)
    for arg in items:
        if arg == "--json":
            continue
        if arg == "--socket":
            path = next(items, "")
        elif arg.startswith("--socket="):
            path = arg.removeprefix("--socket=")
        elif command is None and arg in DOCUMENTS:
            command = arg
        else:
            return None  # anything more (options, --help): the full CLI reads it
    if command is None or not path:
        return None
    return command, path


def _ask(path: str, line: bytes) -> dict[str, object] | None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(QUICK_TIMEOUT)
            sock.connect(path)
            sock.sendall(line)
            answer = _read_line(sock)
    except OSError:
        return None  # the full CLI explains (no daemon, permission, timeout)
    try:
        doc = json.loads(answer) if answer is not None else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _read_line(sock: socket.socket) -> bytes | None:
    data = bytearray()
    while b"\n" not in data:
        chunk = sock.recv(1 << 16)
        if not chunk or len(data) + len(chunk) > MAX_ANSWER_LINE:
            return None
        data += chunk
    return bytes(data[: data.index(b"\n")])
