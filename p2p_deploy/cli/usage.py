"""Plain usage lines: ``p2p run [OPTIONS] INPUT``, as the README writes them.

typer 0.2x writes a required argument as ``{INPUT}`` in the usage line, which reads like a
shell brace expansion; the usual convention is the upper-case name, in brackets when optional.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand, TyperGroup


def _flags_without_type(params: list[Any]) -> list[Any]:
    """``params`` with every flag's metavar blank: typer 0.2x writes a flag as
    ``--overwrite <bool>`` (``--help`` too), which reads as if it took a value, and
    ``--overwrite true`` is an error."""
    for param in params:
        if getattr(param, "is_flag", False) and not param.metavar:
            param.metavar = ""
    return params


class PlainGroup(TyperGroup):
    """A typer group (``p2p``, ``p2p data``) whose flags show no value type."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_type(super().get_params(ctx))


class PlainUsageCommand(TyperCommand):
    """A typer command whose usage line names arguments ``NAME`` / ``[NAME]`` and whose
    flags show no value type."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_type(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                continue  # options are summed up by [OPTIONS]
            name = param.metavar or (param.name or "").upper()
            pieces.append(name if param.required else f"[{name}]")
        return pieces
