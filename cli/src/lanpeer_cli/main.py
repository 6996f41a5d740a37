"""``peer-cli``: every command of SPEC §9 over the control socket, for people and scripts.

Owns the command line (typer), ``--json`` documents, and the exit codes: 0 ok, 1 failed,
2 usage, 3 daemon unreachable, 4 unknown game or peer, 5 conflict. Never imports ``lanpeer``.
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


def _request(factory: type[BaseModel], **fields: Any) -> BaseModel:
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


def _fail(options: Options, code: c.ControlErrorCode, message: str) -> NoReturn:
    exit_code = c.EXIT_CODES[code]
    if options.json:
        doc = {"ok": False, "error": code.value, "message": message, "exit_code": exit_code}
        _print_doc(doc)
    complain(message)
    raise typer.Exit(exit_code)


def _ask(ctx: typer.Context, request: BaseModel) -> tuple[ControlClient, Any]:
    """Send ``request``; the client (still open, for streams) and the result document."""
    options: Options = ctx.obj
    try:
        client = ControlClient(options.socket)
        answer = client.ask(request)
    except DaemonUnreachable as exc:
        _fail(options, c.ControlErrorCode.UNREACHABLE, str(exc))
    except RemoteProtocolError as exc:
        _fail(options, c.ControlErrorCode.FAILED, f"lanpeerd sent a bad answer: {exc.message}")
    if isinstance(answer, c.ErrorMessage):
        client.close()
        _fail(options, answer.code, answer.message)
    return client, answer.result


def _once(ctx: typer.Context, request: BaseModel) -> Any:
    client, result = _ask(ctx, request)
    client.close()
    return result


def _print_doc(doc: Any) -> None:
    print(json.dumps(doc, indent=2), flush=True)


def _accepted(ctx: typer.Context, result: c.AcceptedResult) -> None:
    if ctx.obj.json:
        _print_doc({"ok": True, **result.model_dump(mode="json", exclude={"kind"})})
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


def _follow(ctx: typer.Context, client: ControlClient, game_id: str, bars: bool) -> NoReturn:
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
        _fail(
            options,
            c.ControlErrorCode.UNREACHABLE,
            "lanpeerd stopped before the operation finished",
        )
    if not finished.ok:
        code = finished.error_code or c.ControlErrorCode.FAILED
        complain(f"{finished.kind} of {game_id} failed: {finished.error}")
        raise typer.Exit(c.EXIT_CODES.get(code, 1))
    raise typer.Exit(0)


# ------------------------------------------------------------------ documents


@app.command()
def status(ctx: typer.Context) -> None:
    """Peer id, name, listen address, roots, library rev, counts, active operations."""
    result = _once(ctx, c.StatusRequest())
    if ctx.obj.json:
        _print_doc(result.model_dump(mode="json", exclude={"kind"}))
    else:
        lazy.render.status(lazy.out, result)


@app.command()
def peers(ctx: typer.Context) -> None:
    """Known peers: id, name, address, protocol version, library rev, last seen, game count."""
    result = _once(ctx, c.PeersRequest())
    if ctx.obj.json:
        _print_doc([p.model_dump(mode="json") for p in result.peers])
    else:
        lazy.render.peers(lazy.out, result)


@app.command()
def games(
    ctx: typer.Context,
    installed: Annotated[bool, typer.Option("--installed", help="only installed games")] = False,
    remote: Annotated[
        bool, typer.Option("--remote", help="only games peers offer that are not here")
    ] = False,
    updates: Annotated[bool, typer.Option("--updates", help="only games with an update")] = False,
    match: Annotated[
        str | None, typer.Option("--match", help="only ids or names containing TEXT")
    ] = None,
) -> None:
    """The merged library: installed and downloaded versions, state, peers, newest version;
    totals at the end."""
    result = _once(ctx, c.GamesRequest())
    chosen = [g for g in result.games if _game_matches(g, installed, remote, updates, match)]
    if ctx.obj.json:
        _print_doc([g.model_dump(mode="json") for g in chosen])
    else:
        lazy.render.games(lazy.out, c.GamesResult(games=chosen))


def _game_matches(
    game: c.GameEntry, installed: bool, remote: bool, updates: bool, match: str | None
) -> bool:
    text = (match or "").casefold()
    return (
        (not installed or game.installed)
        and (not remote or (game.version is None and not game.installed and bool(game.peers)))
        and (not updates or game.update_available)
        and (not text or text in game.id.casefold() or text in game.name.casefold())
    )


@app.command()
def ops(
    ctx: typer.Context,
    all_ops: Annotated[
        bool, typer.Option("--all", help="finished and failed operations too")
    ] = False,
) -> None:
    """Operations with lane, queue position, state, progress, speed, ETA, sources; failures
    stay listed until that game's next success."""
    result = _once(ctx, c.OpsRequest(all=all_ops))
    if ctx.obj.json:
        _print_doc([op.model_dump(mode="json") for op in result.ops])
    else:
        lazy.render.ops(lazy.out, result.ops)


@app.command()
def game(ctx: typer.Context, game_id: GameArg) -> None:
    """One game in full: versions (installed, downloaded, offered), variants, sizes, sources,
    state, the operation now and the history."""
    result = _once(ctx, _request(c.GameRequest, game_id=game_id))
    if ctx.obj.json:
        _print_doc(result.model_dump(mode="json", exclude={"kind"}))
    else:
        lazy.render.game(lazy.out, result)


@app.command()
def uploads(ctx: typer.Context) -> None:
    """Who downloads what from this host now: peer, game, rate, bytes sent, since when."""
    result = _once(ctx, c.UploadsRequest())
    if ctx.obj.json:
        _print_doc([u.model_dump(mode="json") for u in result.uploads])
    else:
        lazy.render.uploads(lazy.out, result)


@app.command()
def doctor(ctx: typer.Context) -> None:
    """Explain what blocks discovery or speed: interfaces, ports, peers, disk, caps."""
    result = _once(ctx, c.DoctorRequest())
    if ctx.obj.json:
        _print_doc([check.model_dump(mode="json") for check in result.checks])
    else:
        lazy.render.doctor(lazy.out, result)
    if any(check.status == "fail" for check in result.checks):
        raise typer.Exit(1)


@app.command()
def share(ctx: typer.Context) -> None:
    """The HTTP share's URL (lanpeerd --http-share) and who is downloading from it."""
    result = _once(ctx, c.ShareRequest())
    if ctx.obj.json:
        _print_doc(result.model_dump(mode="json", exclude={"kind"}))
    else:
        lazy.render.share(lazy.out, result)


# ------------------------------------------------------------------ operations


@app.command()
def download(
    ctx: typer.Context,
    game: GameArg,
    version: Annotated[str | None, typer.Option(help="this version instead of the newest")] = None,
    no_install: Annotated[bool, typer.Option("--no-install", help="download only")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="show progress and exit with the result")
    ] = False,
) -> None:
    """Queue a download (and an install after it, unless --no-install)."""
    request = _request(
        c.DownloadRequest, game_id=game, version=version, install=not no_install, wait=wait
    )
    client, result = _ask(ctx, request)
    if not wait or result.operation is None:  # nothing queued (already here): say so
        client.close()
        _accepted(ctx, result)
        return
    if not ctx.obj.json:
        say(result.message)
    _follow(ctx, client, game, bars=True)


def _transaction(
    ctx: typer.Context, factory: type[BaseModel], game: str, wait: bool, **fields: Any
) -> None:
    client, result = _ask(ctx, _request(factory, game_id=game, wait=wait, **fields))
    if not wait or result.operation is None:  # nothing queued (an up-to-date game): say so
        client.close()
        _accepted(ctx, result)
        return
    if not ctx.obj.json:
        say(result.message)
    _follow(ctx, client, game, bars=result.operation.kind == "download")


NoWait = Annotated[bool, typer.Option("--no-wait", help="queue it and return at once")]


@app.command()
def install(ctx: typer.Context, game: GameArg, no_wait: NoWait = False) -> None:
    """Extract a downloaded game into its local/ folder."""
    _transaction(ctx, c.InstallRequest, game, not no_wait)


@app.command()
def update(
    ctx: typer.Context,
    game: GameArg,
    version: Annotated[str | None, typer.Option(help="this version instead of the newest")] = None,
    no_wait: NoWait = False,
) -> None:
    """Fetch the newest version a peer offers (only changed chunks) and update local/ to it;
    the old local/ is restored on failure. With nothing newer, says so and exits 0."""
    _transaction(ctx, c.UpdateRequest, game, not no_wait, version=version)


@app.command()
def uninstall(ctx: typer.Context, game: GameArg, no_wait: NoWait = False) -> None:
    """Delete the installed local/ folder; the download stays."""
    _transaction(ctx, c.UninstallRequest, game, not no_wait)


@app.command()
def remove(
    ctx: typer.Context,
    game: GameArg,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="delete even the last copy on the LAN")
    ] = False,
    no_wait: NoWait = False,
) -> None:
    """Delete the downloaded files of a game that is not installed; asks first when no
    connected peer has a copy (the last one on the LAN)."""
    if not yes and not ctx.obj.json and sys.stdin.isatty():
        offered = _once(ctx, _request(c.GameRequest, game_id=game)).game.peers
        yes = bool(offered) or typer.confirm(
            f"no connected peer has {game}: delete the last copy on the LAN?", default=False
        )
        if not yes:
            raise typer.Exit(1)
    _transaction(ctx, c.RemoveRequest, game, not no_wait, yes=yes)


@app.command()
def cancel(ctx: typer.Context, game: GameArg) -> None:
    """Cancel the active or queued operation of a game."""
    _accepted(ctx, _once(ctx, _request(c.CancelRequest, game_id=game)))


@app.command()
def watch(
    ctx: typer.Context,
    game: Annotated[str | None, typer.Option("--game", help="only events of this game")] = None,
) -> None:
    """Stream daemon events: peers up/down, library changes, progress, finished operations."""
    client, _ = _ask(ctx, _request(c.WatchRequest, game_id=game))
    try:
        with client:
            events: Iterable[c.Event] = client.events()
            if not ctx.obj.json:
                events = lazy.render.progress_bars(lazy.out, events)
            for event in events:
                if ctx.obj.json:
                    print(event.model_dump_json(), flush=True)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@app.command()
def rescan(
    ctx: typer.Context,
    game: Annotated[str | None, typer.Argument(help="only this game")] = None,
) -> None:
    """Force a rescan of the library (or of one game)."""
    _accepted(ctx, _once(ctx, _request(c.RescanRequest, game_id=game)))


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise typer.BadParameter(f"{address!r} is not HOST:PORT (e.g. 192.168.1.20:47600)")
    return host.strip("[]"), int(port)


PeerAddress = Annotated[str, typer.Argument(metavar="HOST:PORT", help="the peer's listener")]


@app.command("add-peer")
def add_peer(ctx: typer.Context, address: PeerAddress) -> None:
    """Dial a static peer (for networks where multicast is blocked); says if it answered."""
    host, port = _host_port(address)
    _accepted(ctx, _once(ctx, _request(c.AddPeerRequest, host=host, port=port)))


@app.command("remove-peer")
def remove_peer(ctx: typer.Context, address: PeerAddress) -> None:
    """Stop dialling a static peer added with --peer or add-peer."""
    host, port = _host_port(address)
    _accepted(ctx, _once(ctx, _request(c.RemovePeerRequest, host=host, port=port)))


@app.command()
def shutdown(ctx: typer.Context) -> None:
    """Stop the daemon gracefully (Goodbye to peers, state saved)."""
    _accepted(ctx, _once(ctx, c.ShutdownRequest()))


def run(args: list[str]) -> None:
    """The full CLI on already hoisted arguments (``lanpeer_cli.entry`` is the entry point)."""
    app(args=args, prog_name="peer-cli")


def main() -> None:
    from lanpeer_cli.entry import main as entry_main

    entry_main()


if __name__ == "__main__":
    main()
