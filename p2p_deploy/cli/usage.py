"""Plain usage lines: ``p2p run [OPTIONS] INPUT``, as the README writes them.

typer 0.2x writes a required argument as ``{INPUT}`` in the usage line, which reads like a
shell brace expansion; the usual convention is the upper-case name, in brackets when optional.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand


class PlainUsageCommand(TyperCommand):
    """A typer command whose usage line names arguments ``NAME`` / ``[NAME]``."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                continue  # options are summed up by [OPTIONS]
            name = param.metavar or (param.name or "").upper()
            pieces.append(name if param.required else f"[{name}]")
        return pieces
