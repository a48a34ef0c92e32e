"""Command options declared once: a dataclass field carries its flag, help text and default.

Each command's options are one frozen dataclass (``TrainConfig``, ``BenchArgs``, ``RunArgs``,
``ExportOptions``). Their fields are made with :func:`option`, whose metadata is all the CLI
needs: ``p2p_deploy.cli.dataclass_options`` turns the fields into typer parameters (help texts
then show the dataclass's own defaults), and :func:`command_line` turns an options object back
into the command that reproduces it. Nothing here imports typer or torch.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable
from typing import Any

_MISSING: Any = dataclasses.MISSING


def option(
    default: Any = _MISSING,
    *,
    help: str,  # noqa: A002 - the word every CLI library uses
    factory: Callable[[], Any] | None = None,
    flag: str | None = None,
    short: str | None = None,
    negative: bool = True,
    argument: bool = False,
    metavar: str | None = None,
    comma: bool = False,
    shown: str | None = None,
    cli: bool = True,
    min: int | None = None,  # noqa: A002 - typer's name
) -> Any:
    """A dataclass field with its command-line description in ``metadata``.

    Args:
        default / factory: the field's default (``factory`` for lists).
        help: one sentence for ``--help`` (the default is appended from ``default``).
        flag: the long flag when it is not ``--`` + the name with ``_`` -> ``-``.
        short: a short alias (``-o``).
        negative: booleans get ``--x/--no-x`` (else a plain ``--x`` switch).
        argument: a positional argument (``metavar`` names it in the usage line).
        comma: a list given as one comma-separated value (``--batch 1,4``); other lists repeat
            their flag (``--onnx a --onnx b``).
        shown: what ``--help`` shows as the default when it is not a plain value
            (``"<input>_p2p beside the input"``).
        cli: False for fields a command fills itself (not a flag).
        min: the smallest value the parser accepts (a usage error below it).
    """
    meta = {
        "help": help,
        "flag": flag,
        "short": short,
        "negative": negative,
        "argument": argument,
        "metavar": metavar,
        "comma": comma,
        "shown": shown,
        "cli": cli,
        "min": min,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field[Any]) -> str:
    """``image_size`` -> ``--image-size`` (or the field's own ``flag``)."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def default_of(f: dataclasses.Field[Any]) -> Any:
    """The field's default value (a fresh one for ``default_factory`` fields)."""
    if f.default_factory is not _MISSING:
        return f.default_factory()
    return None if f.default is _MISSING else f.default


def show_value(v: Any) -> str:
    """A value as a user types it: ``2e-4`` (not ``0.0002``), ``100``, ``on``/``off``, ``1,4``."""
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        if v != 0 and abs(v) < 1e-3:
            mantissa, exp = f"{v:e}".split("e")
            return f"{float(mantissa):g}e{int(exp)}"
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return ",".join(map(show_value, v))
    return str(v)


def command_line(prog: list[str], opts: Any, skip: tuple[str, ...] = ()) -> str:
    """The shell command that reproduces ``opts`` (a dataclass made with :func:`option`).

    Positional arguments first, then every flag whose value is set (None, empty lists and
    False switches are left out). Field names in ``skip`` are left out too.
    """
    args: list[str] = []
    flags: list[str] = []
    for f in dataclasses.fields(opts):
        if f.name in skip or not f.metadata.get("cli", False):
            continue
        v = getattr(opts, f.name)
        if v is None or v == [] or v == ():
            continue
        if f.metadata.get("argument"):
            args.append(str(v))
            continue
        on, _, off = flag_of(f).partition("/")  # "--keep-size/--model-size"
        off = off or "--no-" + on.removeprefix("--")
        if isinstance(v, bool):
            if v and default_of(f) is not True:
                flags.append(on)
            elif not v and f.metadata.get("negative", True) and default_of(f) is not False:
                flags.append(off)
        elif isinstance(v, list | tuple) and not f.metadata.get("comma"):
            for item in v:
                flags += [on, str(item)]
        else:
            flags += [on, show_value(v)]
    return shlex.join([*prog, *args, *flags])
