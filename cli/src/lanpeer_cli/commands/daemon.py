"""peer-cli's commands about lanpeerd itself: shutdown, and ui (open the web UI)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from lanpeer_proto import control as c

from lanpeer_cli.app import (
    accepted,
    app,
    ask_once,
    complain,
    fail,
    print_doc,
)


@app.command()
def shutdown(ctx: typer.Context) -> None:
    """Stop the daemon gracefully (Goodbye to peers, state saved)."""
    accepted(ctx, ask_once(ctx, c.ShutdownRequest()))


@app.command()
def ui(
    ctx: typer.Context,
    print_url: Annotated[
        bool, typer.Option("--print-url", help="only print the address (with its token)")
    ] = False,
) -> None:
    """Open the web UI in a browser (the address carries the access token)."""
    result = ask_once(ctx, c.UiRequest())
    if result.url is None:
        fail(ctx.obj, c.ControlErrorCode.NOT_AVAILABLE, result.message)
    if ctx.obj.json:
        print_doc({"ok": True, "url": result.url})
        return
    print(result.url, flush=True)
    if not print_url and not _open_browser(result.url):
        complain("no browser found here: open the address above in one")


def _open_browser(url: str) -> bool:
    """Open ``url`` in a graphical browser; False where there is none (ssh, a bare console)."""
    import os
    import webbrowser

    graphical = sys.platform in ("darwin", "win32") or any(
        os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY")
    )
    if not graphical:
        return False  # a console browser would take over this terminal
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False
