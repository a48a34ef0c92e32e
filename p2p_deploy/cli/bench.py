"""`p2p bench` (being built: this module is replaced by the bench work)."""

import typer


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def _cmd() -> None:
        """(not built yet)"""
        raise typer.Exit(1)
