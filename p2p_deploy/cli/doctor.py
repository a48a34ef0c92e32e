"""`p2p doctor` (being built: this module is replaced by the doctor work)."""

import typer


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def _cmd() -> None:
        """(not built yet)"""
        raise typer.Exit(1)
