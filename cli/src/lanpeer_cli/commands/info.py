"""peer-cli's read-only commands: status, peers, games, ops, game, uploads, doctor, share.

Each asks one question and prints the answer, as a rich table or (``--json``) a document;
none changes anything on the daemon.
"""

from __future__ import annotations

from typing import Annotated

import typer
from lanpeer_proto import control as c

from lanpeer_cli.app import (
    GameArg,
    app,
    ask_once,
    lazy,
    print_doc,
    request_for,
)


@app.command()
def status(ctx: typer.Context) -> None:
    """Peer id, name, listen address, roots, library rev, counts, active operations."""
    result = ask_once(ctx, c.StatusRequest())
    if ctx.obj.json:
        print_doc(result.model_dump(mode="json", exclude={"kind"}))
    else:
        lazy.render.status(lazy.out, result)


@app.command()
def peers(ctx: typer.Context) -> None:
    """Known peers: id, name, address, protocol version, library rev, last seen, game count."""
    result = ask_once(ctx, c.PeersRequest())
    if ctx.obj.json:
        print_doc([p.model_dump(mode="json") for p in result.peers])
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
    result = ask_once(ctx, c.GamesRequest())
    chosen = [g for g in result.games if _game_matches(g, installed, remote, updates, match)]
    if ctx.obj.json:
        print_doc([g.model_dump(mode="json") for g in chosen])
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
    result = ask_once(ctx, c.OpsRequest(all=all_ops))
    if ctx.obj.json:
        print_doc([op.model_dump(mode="json") for op in result.ops])
    else:
        lazy.render.ops(lazy.out, result.ops)


@app.command()
def game(ctx: typer.Context, game_id: GameArg) -> None:
    """One game in full: versions (installed, downloaded, offered), variants, sizes, sources,
    state, the operation now and the history."""
    result = ask_once(ctx, request_for(c.GameRequest, game_id=game_id))
    if ctx.obj.json:
        print_doc(result.model_dump(mode="json", exclude={"kind"}))
    else:
        lazy.render.game(lazy.out, result)


@app.command()
def uploads(ctx: typer.Context) -> None:
    """Who downloads what from this host now: peer, game, rate, bytes sent, since when."""
    result = ask_once(ctx, c.UploadsRequest())
    if ctx.obj.json:
        print_doc([u.model_dump(mode="json") for u in result.uploads])
    else:
        lazy.render.uploads(lazy.out, result)


@app.command()
def doctor(ctx: typer.Context) -> None:
    """Explain what blocks discovery or speed: interfaces, ports, peers, disk, caps."""
    result = ask_once(ctx, c.DoctorRequest())
    if ctx.obj.json:
        print_doc([check.model_dump(mode="json") for check in result.checks])
    else:
        lazy.render.doctor(lazy.out, result)
    if any(check.status == "fail" for check in result.checks):
        raise typer.Exit(1)


@app.command()
def share(ctx: typer.Context) -> None:
    """The HTTP share's URL (lanpeerd --http-share) and who is downloading from it."""
    result = ask_once(ctx, c.ShareRequest())
    if ctx.obj.json:
        print_doc(result.model_dump(mode="json", exclude={"kind"}))
    else:
        lazy.render.share(lazy.out, result)
