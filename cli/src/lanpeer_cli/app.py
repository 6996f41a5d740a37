"""peer-cli's typer app, its global options and the plumbing every command shares.

Owns the ``Typer`` app and ``--socket`` / ``--json`` / ``--version``, turning arguments into
request models (bad ones: exit 2 with words), asking the daemon, printing ``--json`` documents,
failing with SPEC §9's exit codes and following a waited operation to its end. The commands
themselves live in ``lanpeer_cli.commands``. Never imports ``lanpeer``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import re
import sys
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from lanpeer_proto import control as c
from lanpeer_proto.errors import RemoteProtocolError
from lanpeer_proto.paths import GAME_ID_RE

if TYPE_CHECKING:
    from rich.console import Console
from pydantic import BaseModel, ValidationError

from lanpeer_cli.client import ControlClient, DaemonUnreachable, default_socket

app = typer.Typer(
    help="Control a running lanpeerd (LAN-party game sharing).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


class _Lazy:
    """rich and the renderers load only when a person reads the output (``--json`` skips them)."""

    @functools.cached_property
    def render(self) -> ModuleType:
        return importlib.import_module("lanpeer_cli.render")

    @functools.cached_property
    def out(self) -> Console:
        from rich.console import Console

        return Console()


lazy = _Lazy()


def say(text: str) -> None:
    lazy.out.print(text, markup=False, highlight=False)


def complain(text: str) -> None:
    print(f"peer-cli: {text}", file=sys.stderr, flush=True)


def complete_game_id(ctx: typer.Context, incomplete: str) -> list[str]:
    """TAB completion: the ids of the merged library (``games``), asked over the quick road."""
    from lanpeer_cli.entry import ask_document

    socket = ctx.find_root().params.get("socket") or default_socket()
    games = ask_document(str(socket), "games")
    ids = [g.get("id") for g in games if isinstance(g, dict)] if isinstance(games, list) else []
    return [i for i in ids if isinstance(i, str) and i.startswith(incomplete)]


GameArg = Annotated[
    str,
    typer.Argument(help="game id, as listed by `peer-cli games`", autocompletion=complete_game_id),
]


@dataclass
class Options:
    socket: Path
    json: bool


def _print_version(value: bool) -> None:
    if value:
        from lanpeer_cli.entry import print_version

        raise typer.Exit(print_version())


@app.callback()
def _global(
    ctx: typer.Context,
    socket: Annotated[
        Path | None,
        typer.Option("--socket", help="control socket of the daemon", envvar="LANPEER_SOCKET"),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", help="print the version and exit", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    ctx.obj = Options(socket=socket or default_socket(), json=json_output)


# ------------------------------------------------------------------ plumbing


def request_for(factory: type[BaseModel], **fields: Any) -> BaseModel:
    """The request model, or a usage error (exit 2) when an argument is invalid."""
    try:
        return factory(**fields)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise typer.BadParameter(problems) from exc


def _problem(error: Any) -> str:
    """One invalid argument in words (never pydantic's ``String should match pattern ...``)."""
    where = ".".join(map(str, error["loc"]))
    value = error.get("input")
    if where == "game_id" and isinstance(value, str):
        return bad_game_id(value)
    return f"{where} {value!r}: {error['msg']}"


def bad_game_id(text: str) -> str:
    guess = re.sub(r"[^a-z0-9_-]+", "-", text.strip().lower()).strip("-_")[:64]
    message = (
        f"{text!r} is not a game id: ids are lowercase letters, digits, '-' and '_', "
        "up to 64, as `peer-cli games` lists them"
    )
    return f"{message}; did you mean {guess}?" if GAME_ID_RE.match(guess) else message


def fail(options: Options, code: c.ControlErrorCode, message: str) -> NoReturn:
    exit_code = c.EXIT_CODES[code]
    if options.json:
        doc = {"ok": False, "error": code.value, "message": message, "exit_code": exit_code}
        print_doc(doc)
    complain(message)
    raise typer.Exit(exit_code)


def ask(ctx: typer.Context, request: BaseModel) -> tuple[ControlClient, Any]:
    """Send ``request``; the client (still open, for streams) and the result document."""
    options: Options = ctx.obj
    try:
        client = ControlClient(options.socket)
        answer = client.ask(request)
    except DaemonUnreachable as exc:
        fail(options, c.ControlErrorCode.UNREACHABLE, str(exc))
    except RemoteProtocolError as exc:
        fail(options, c.ControlErrorCode.FAILED, f"lanpeerd sent a bad answer: {exc.message}")
    if isinstance(answer, c.ErrorMessage):
        client.close()
        fail(options, answer.code, answer.message)
    return client, answer.result


def ask_once(ctx: typer.Context, request: BaseModel) -> Any:
    client, result = ask(ctx, request)
    client.close()
    return result


def print_doc(doc: Any) -> None:
    print(json.dumps(doc, indent=2), flush=True)


def accepted(ctx: typer.Context, result: c.AcceptedResult) -> None:
    if ctx.obj.json:
        print_doc({"ok": True, **result.model_dump(mode="json", exclude={"kind"})})
    else:
        say(result.message)


def _event_view(
    client: ControlClient, json_output: bool, bars: bool
) -> Generator[c.Event, None, None]:
    """The client's events, drawn as progress bars for people when ``bars``."""
    events = client.events()
    return lazy.render.progress_bars(lazy.out, events) if bars and not json_output else events


def _until_finished(
    events: Iterable[c.Event], game_id: str, json_output: bool, bars: bool
) -> c.FinishedEvent | None:
    for event in events:
        if json_output:
            print(event.model_dump_json(), flush=True)
        elif not bars:
            say(lazy.render.event_line(event))
        if isinstance(event, c.FinishedEvent) and event.game_id == game_id:
            return event
    return None


def follow_to_end(ctx: typer.Context, client: ControlClient, game_id: str, bars: bool) -> NoReturn:
    """Stream events of a waited operation and exit with its result."""
    options: Options = ctx.obj
    try:
        with client, contextlib.closing(_event_view(client, options.json, bars)) as events:
            finished = _until_finished(events, game_id, options.json, bars)
    except KeyboardInterrupt:
        # Only the watching stops: say so, or people think Ctrl-C cancelled it.
        complain(
            f"stopped watching; the operation on {game_id} goes on in lanpeerd: "
            f"`peer-cli ops` shows it, `peer-cli cancel {game_id}` stops it"
        )
        raise typer.Exit(130) from None
    if finished is None:
        fail(
            options,
            c.ControlErrorCode.UNREACHABLE,
            "lanpeerd stopped before the operation finished",
        )
    if not finished.ok:
        code = finished.error_code or c.ControlErrorCode.FAILED
        complain(f"{finished.kind} of {game_id} failed: {finished.error}")
        raise typer.Exit(c.EXIT_CODES.get(code, 1))
    raise typer.Exit(0)
