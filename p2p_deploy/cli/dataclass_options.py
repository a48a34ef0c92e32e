"""typer parameters generated from an options dataclass (fields made with ``options.option``).

A command's options are declared once, as dataclass fields with their help text and default;
this module turns them into the ``typer.Option``/``typer.Argument`` parameters of the command
function, so ``--help`` shows the dataclass's own defaults and the flags cannot drift from it.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import typer

from p2p_deploy.options import default_of, flag_of, show_value


def _unwrap_optional(tp: Any) -> Any:
    """``int | None`` -> ``int``; other types unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _comma_parser(flag: str, item: type) -> Callable[[str | None], list[Any] | None]:
    """Parse ``1,4,16`` into ``[1, 4, 16]`` (a usage error names the flag and the value)."""

    def parse(text: str | None) -> list[Any] | None:
        if text is None:
            return None
        try:
            return [item(x) for x in text.replace(" ", "").split(",") if x]
        except ValueError:
            example = "1,4,16" if item is int else "a,b"
            raise typer.BadParameter(
                f"expected comma-separated {item.__name__} values like {example}, got {text!r}"
            ) from None

    return parse


def _escape(text: str) -> str:
    # rich reads an unescaped "[default: 64]" as a markup tag and drops it from --help.
    return text.replace("[", "\\[")


def parameters(
    cls: type, *, given_only: bool = False, skip: tuple[str, ...] = ()
) -> list[inspect.Parameter]:
    """One ``inspect.Parameter`` per CLI field of ``cls``, in declaration order.

    ``given_only``: every option defaults to None, so the command sees only the flags given
    (``p2p train`` layers them over ``--config``); the dataclass default goes into the help.
    """
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli") or f.name in skip:
            continue
        tp = _unwrap_optional(hints[f.name])
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = None if required else default_of(f)
        help_text = meta["help"]
        shown = meta.get("shown")
        if meta.get("argument"):
            info = typer.Argument(
                ... if required else default,
                metavar=meta.get("metavar"),
                help=help_text,
                show_default=shown or not required,
            )
            params.append(_param(f.name, tp if required else tp | None, info))
            continue
        decls = [flag_of(f)]
        if meta.get("short"):
            decls.append(meta["short"])
        annotation: Any = tp
        callback = None
        value: Any = default
        if tp is bool:
            if meta.get("negative", True) and "/" not in decls[0]:
                name = flag_of(f).removeprefix("--")
                decls[0] = f"--{name}/--no-{name}"
        elif typing.get_origin(tp) is list and meta.get("comma"):
            (item,) = typing.get_args(tp)
            annotation = str
            callback = _comma_parser(flag_of(f), item)
            value = show_value(default) if default is not None else None
        if given_only:
            help_text += " " + _escape(f"[default: {shown or show_value(default)}]")
            value = None
            show_default: bool | str = False
            annotation = annotation | None
        else:
            show_default = shown or (not required and default is not None and default != [])
            if default is None and not required:
                annotation = annotation | None
        info = typer.Option(
            ... if required else value,
            *decls,
            help=help_text,
            show_default=show_default,
            callback=callback,
            metavar=meta.get("metavar"),
            # No min/max here: options.validate checks every range, in the one style
            # ("--batch 0: must be at least 1."); typer's own range check words it as a
            # validation library does ("Input should be greater than or equal to 1"), and
            # click's float ranges let NaN through.
        )
        params.append(_param(f.name, annotation, info))
    return params


def _param(name: str, annotation: Any, info: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=info, annotation=annotation
    )


def with_parameters(fn: Callable[..., Any], params: list[inspect.Parameter]) -> Callable[..., Any]:
    """Give ``fn(**kwargs)`` the signature typer reads (``params``), without changing it."""
    fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in params}
    return fn


def build(cls: type, values: dict[str, Any]) -> Any:
    """The options object from the command's keyword arguments (CLI fields only)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names})
