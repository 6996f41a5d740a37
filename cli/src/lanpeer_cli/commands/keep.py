"""peer-cli's keep-in-step commands: pin / unpin a game's version, follow / unfollow a peer."""

from __future__ import annotations

from typing import Annotated

import typer
from lanpeer_proto import control as c

from lanpeer_cli.app import (
    GameArg,
    accepted,
    app,
    ask_once,
    request_for,
)


@app.command()
def pin(
    ctx: typer.Context,
    game: GameArg,
    version: Annotated[str | None, typer.Argument(help="default: the version here")] = None,
) -> None:
    """Keep a game at a version: auto-update skips it, download fetches that version."""
    accepted(ctx, ask_once(ctx, request_for(c.PinRequest, game_id=game, version=version)))


@app.command()
def unpin(ctx: typer.Context, game: GameArg) -> None:
    """Let auto-update and download take the newest version of a game again."""
    accepted(ctx, ask_once(ctx, request_for(c.UnpinRequest, game_id=game)))


PeerArg = Annotated[str, typer.Argument(metavar="PEER", help="peer id (a prefix) or name")]


@app.command()
def follow(
    ctx: typer.Context,
    peer: PeerArg,
    no_install: Annotated[bool, typer.Option("--no-install", help="download only")] = False,
) -> None:
    """Mirror a peer: download what it offers that this host lacks, now and as it changes."""
    request = request_for(c.FollowRequest, peer=peer, install=not no_install)
    accepted(ctx, ask_once(ctx, request))


@app.command()
def unfollow(ctx: typer.Context, peer: PeerArg) -> None:
    """Stop mirroring a peer (what was downloaded stays)."""
    accepted(ctx, ask_once(ctx, request_for(c.UnfollowRequest, peer=peer)))
