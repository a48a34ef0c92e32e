"""`p2p synth` (being built: this module is replaced by the train work)."""

import typer


def register(app: typer.Typer) -> None:
    @app.command("synth")
    def _cmd() -> None:
        """(not built yet)"""
        raise typer.Exit(1)
