"""Command options declared once: a dataclass field carries its flag, help text and default.

Each command's options are one frozen dataclass (``TrainConfig``, ``BenchArgs``, ``RunArgs``,
``ExportOptions``). Their fields are made with :func:`option`, whose metadata is all the CLI
needs: ``p2p_deploy.cli.dataclass_options`` turns the fields into typer parameters (help texts
then show the dataclass's own defaults), and :func:`command_line` turns an options object back
into the command that reproduces it. Nothing here imports typer or torch.

Every value is checked where it is parsed, by one validator (:func:`check_value`): a field's
metadata says what it accepts (``min``, ``max``, ``above``, ``choices``, ``check``), floats must
be finite, and a bad value is one :class:`~p2p_deploy.errors.UsageError` line (exit 64) naming
the flag. Options dataclasses call :func:`validate` in ``__post_init__``; options declared
directly on a typer command use :func:`checked` as their callback.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
from collections.abc import Callable
from typing import Any

from p2p_deploy.errors import UsageError

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
    min: float | None = None,  # noqa: A002 - typer's name
    max: float | None = None,  # noqa: A002
    above: float | None = None,
    choices: tuple[str, ...] | None = None,
    check: Callable[[Any], str | None] | None = None,
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
        min / max: the smallest / largest value accepted (a usage error outside).
        above: a value must be greater than this (``--duration`` > 0).
        choices: the only values accepted (strings).
        check: ``check(value)`` -> None, or what is wrong (grammars: a device, a URL).
    Every float must also be finite (:func:`check_value`).
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
        "max": max,
        "above": above,
        "choices": choices,
        "check": check,
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


# ------------------------------------------------------------------------------- validation

RULES = ("min", "max", "above", "choices", "check")


def check_value(
    flag: str,
    value: Any,
    *,
    min: float | None = None,  # noqa: A002
    max: float | None = None,  # noqa: A002
    above: float | None = None,
    choices: tuple[str, ...] | None = None,
    check: Callable[[Any], str | None] | None = None,
) -> None:
    """The one option validator: ``value`` of ``flag`` is finite (floats), within ``min`` /
    ``max`` / ``above``, one of ``choices``, and passes ``check``. Lists and tuples are checked
    item by item; None (an option not given) passes.

    Raises:
        UsageError: one line naming the flag and the value (exit 64).
    """
    if value is None:
        return
    if isinstance(value, list | tuple):
        for item in value:
            check_value(flag, item, min=min, max=max, above=above, choices=choices, check=check)
        return
    shown = show_value(value) if not isinstance(value, str) else repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{flag} {value}: must be a finite number.")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if min is not None and value < min:
            raise UsageError(f"{flag} {shown}: must be at least {show_value(min)}.")
        if above is not None and not value > above:
            raise UsageError(f"{flag} {shown}: must be greater than {show_value(above)}.")
        if max is not None and value > max:
            raise UsageError(f"{flag} {shown}: must be at most {show_value(max)}.")
    if choices is not None and value not in choices:
        raise UsageError(f"{flag} {shown}: must be one of {', '.join(choices)}.")
    if check is not None:
        why = check(value)
        if why:
            raise UsageError(f"{flag} {shown}: {why}.")


def validate(opts: Any) -> None:
    """Check every field of an options dataclass (fields made with :func:`option`) against
    its metadata with :func:`check_value`; call from ``__post_init__``.

    Raises:
        UsageError: the first bad value, naming its flag.
    """
    for f in dataclasses.fields(opts):
        meta = f.metadata
        if "help" not in meta:
            continue
        rules = {k: meta[k] for k in RULES if meta.get(k) is not None}
        check_value(flag_of(f).partition("/")[0], getattr(opts, f.name), **rules)


def checked(flag: str, **rules: Any) -> Callable[..., Any]:
    """A typer/click callback that runs :func:`check_value` on the parsed value (for options
    declared directly on a command, not through a dataclass)."""

    def callback(value: Any) -> Any:
        check_value(flag, value, **rules)
        return value

    return callback


# Names that become one folder or file name (a Triton model, a dataset, a split): one path
# component, never "." or "..", no separators (see p2p_deploy.paths for the containment check).
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def plain_name(value: Any) -> str | None:
    """None when ``value`` is usable as one file or folder name, else why not."""
    text = str(value)
    if _NAME.fullmatch(text) and text not in (".", ".."):
        return None
    return "must be one plain name (letters, digits, '_', '-', '.'; no '/' or '..')"


def device_grammar(
    allow_auto: bool = True, allow_index: bool = True
) -> Callable[[Any], str | None]:
    """A ``check`` for device options: the one grammar of :mod:`p2p_deploy.devices`."""

    def check(value: Any) -> str | None:
        from p2p_deploy.devices import parse_device
        from p2p_deploy.errors import P2PError

        try:
            parse_device(str(value), allow_auto=allow_auto, allow_index=allow_index, flag="")
        except P2PError as exc:
            return str(exc).split(", got ")[0].strip()
        return None

    return check
