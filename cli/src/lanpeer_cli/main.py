"""peer-cli entry point (placeholder until the CLI issue lands)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Control a running lanpeerd.", no_args_is_help=True)


@app.command()
def status() -> None:
    """Show the daemon status."""
    typer.echo("peer-cli: not built yet", err=True)
    raise typer.Exit(3)
