"""peer-cli's static peers: add-peer and remove-peer, for networks where multicast is blocked."""

from __future__ import annotations

from typing import Annotated

import typer
from lanpeer_proto import control as c

from lanpeer_cli.app import (
    accepted,
    app,
    ask_once,
    request_for,
)


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
    accepted(ctx, ask_once(ctx, request_for(c.AddPeerRequest, host=host, port=port)))


@app.command("remove-peer")
def remove_peer(ctx: typer.Context, address: PeerAddress) -> None:
    """Stop dialling a static peer added with --peer or add-peer."""
    host, port = _host_port(address)
    accepted(ctx, ask_once(ctx, request_for(c.RemovePeerRequest, host=host, port=port)))
