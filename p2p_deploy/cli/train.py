"""`p2p train` (being built: this module is replaced by the train work)."""

import typer


def register(app: typer.Typer) -> None:
    @app.command("train")
    def _cmd() -> None:
        """(not built yet)"""
        raise typer.Exit(1)
