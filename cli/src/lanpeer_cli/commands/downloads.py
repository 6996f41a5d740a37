"""peer-cli's operations on games: download (one or ``--all``), install, update, uninstall,
remove, cancel, watch, rescan.

``--wait`` (and the transactions by default) streams the operation's events until it finishes
and exits with its result.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Annotated, Any

import typer
from lanpeer_proto import control as c
from pydantic import BaseModel

from lanpeer_cli.app import (
    GameArg,
    accepted,
    app,
    ask,
    ask_once,
    follow_to_end,
    lazy,
    print_doc,
    request_for,
    say,
)


@app.command()
def download(
    ctx: typer.Context,
    game: Annotated[
        str | None, typer.Argument(help="game id, as listed by `peer-cli games`")
    ] = None,
    version: Annotated[str | None, typer.Option(help="this version instead of the newest")] = None,
    no_install: Annotated[bool, typer.Option("--no-install", help="download only")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="show progress and exit with the result")
    ] = False,
    all_games: Annotated[
        bool, typer.Option("--all", help="every offered game this host lacks or has older")
    ] = False,
    from_peer: Annotated[
        str | None, typer.Option("--from", help="from this peer (id prefix or name)")
    ] = None,
    match: Annotated[
        str | None, typer.Option(help="with --all: only games whose id or name contains this")
    ] = None,
    variant: Annotated[
        str | None, typer.Option(help="the content whose manifest hash starts with this")
    ] = None,
) -> None:
    """Queue a download (and an install after it, unless --no-install); --all: a peer's library."""
    if all_games:
        if game is not None or version or variant or wait:
            raise typer.BadParameter("--all takes no GAME, --version, --variant or --wait")
        request = request_for(
            c.DownloadAllRequest, from_peer=from_peer, match=match, install=not no_install
        )
        result = ask_once(ctx, request)
        if ctx.obj.json:
            print_doc({"ok": True, **result.model_dump(mode="json", exclude={"kind"})})
        else:
            say(result.message)
        return
    if game is None:
        raise typer.BadParameter("name a GAME, or give --all")
    request = request_for(
        c.DownloadRequest, game_id=game, version=version, install=not no_install, wait=wait,
        from_peer=from_peer, variant=variant,
    )  # fmt: skip
    client, result = ask(ctx, request)
    if not wait or result.operation is None:  # nothing queued (already here): say so
        client.close()
        accepted(ctx, result)
        return
    if not ctx.obj.json:
        say(result.message)
    follow_to_end(ctx, client, game, bars=True)


def _transaction(
    ctx: typer.Context, factory: type[BaseModel], game: str, wait: bool, **fields: Any
) -> None:
    client, result = ask(ctx, request_for(factory, game_id=game, wait=wait, **fields))
    if not wait or result.operation is None:  # nothing queued (an up-to-date game): say so
        client.close()
        accepted(ctx, result)
        return
    if not ctx.obj.json:
        say(result.message)
    follow_to_end(ctx, client, game, bars=result.operation.kind == "download")


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
        offered = ask_once(ctx, request_for(c.GameRequest, game_id=game)).game.peers
        yes = bool(offered) or typer.confirm(
            f"no connected peer has {game}: delete the last copy on the LAN?", default=False
        )
        if not yes:
            raise typer.Exit(1)
    _transaction(ctx, c.RemoveRequest, game, not no_wait, yes=yes)


@app.command()
def cancel(ctx: typer.Context, game: GameArg) -> None:
    """Cancel the active or queued operation of a game."""
    accepted(ctx, ask_once(ctx, request_for(c.CancelRequest, game_id=game)))


@app.command()
def watch(
    ctx: typer.Context,
    game: Annotated[str | None, typer.Option("--game", help="only events of this game")] = None,
) -> None:
    """Stream daemon events: peers up/down, library changes, progress, finished operations."""
    client, _ = ask(ctx, request_for(c.WatchRequest, game_id=game))
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
    accepted(ctx, ask_once(ctx, request_for(c.RescanRequest, game_id=game)))
