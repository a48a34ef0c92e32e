"""`p2p run` (being built: this module is replaced by the run work)."""

import typer


def register(app: typer.Typer) -> None:
    @app.command("run")
    def _cmd() -> None:
        """(not built yet)"""
        raise typer.Exit(1)
