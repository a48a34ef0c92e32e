"""`p2p export` (being built: this module is replaced by the export work)."""

import typer


def register(app: typer.Typer) -> None:
    @app.command("export")
    def _cmd() -> None:
        """(not built yet)"""
        raise typer.Exit(1)
