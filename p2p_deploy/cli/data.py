"""`p2p data list` and `p2p data download`: the standard pix2pix datasets.

Only typer and the standard library at import time; the downloader (p2p_deploy.train.download)
and rich are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

HELP = "The standard pix2pix datasets: list them, download and unpack one."

DOWNLOAD_HELP = (
    "Download NAME.tar.gz from the mirror and unpack it to DIR/NAME (train/, val/, test/ "
    "splits of aligned A|B images), ready for `p2p train --data DIR/NAME`.\n\n"
    "An interrupted download resumes (DIR/NAME.tar.gz.part is kept, HTTP Range). The size is "
    "checked against the server's, and the sha256 against MIRROR/NAME.tar.gz.sha256 when the "
    "mirror ships one. Unsafe archive members (absolute paths, '..', links leaving DIR) are "
    "refused; DIR/NAME appears only once complete. An existing DIR/NAME is left as it is."
)


def register(app: typer.Typer) -> None:
    from p2p_deploy.cli.usage import PlainGroup, PlainUsageCommand

    data_app = typer.Typer(name="data", help=HELP, no_args_is_help=True, cls=PlainGroup)
    app.add_typer(data_app, name="data")

    @data_app.command(
        "list", cls=PlainUsageCommand, help="The standard datasets: what each translates, its size."
    )
    def list_cmd() -> None:
        _list()

    from p2p_deploy.options import checked, plain_name

    @data_app.command("download", help=DOWNLOAD_HELP, cls=PlainUsageCommand)
    def download_cmd(
        name: str = typer.Argument(
            ...,
            help="Dataset name (see `p2p data list`).",
            callback=checked("NAME", check=plain_name),
        ),
        to: Path = typer.Option(Path("datasets"), "--to", help="Folder that receives NAME/."),
        mirror: str | None = typer.Option(
            None,
            "--mirror",
            help="Base URL (http, https or file) of a folder holding NAME.tar.gz.",
            callback=checked("--mirror", check=mirror_url),
            show_default="http://efrosgans.eecs.berkeley.edu/pix2pix/datasets",
        ),
        timeout: float = typer.Option(
            30.0,
            "--timeout",
            callback=checked("--timeout", min=0.1, max=86_400),
            help="Seconds a connection may stall.",
        ),
        keep_archive: bool = typer.Option(
            False, "--keep-archive", help="Keep NAME.tar.gz after unpacking."
        ),
        progress: bool = typer.Option(
            True, "--progress/--no-progress", help="Show a progress bar."
        ),
    ) -> None:
        from p2p_deploy.train.download import DownloadOptions

        opts = DownloadOptions(
            name=name, to=to, mirror=mirror, timeout=timeout, keep_archive=keep_archive
        )
        _download(opts, progress)


def mirror_url(value: str) -> str | None:
    """None when ``value`` is an http(s):// URL with a host or a file:// URL, else why not."""
    import urllib.parse

    parts = urllib.parse.urlparse(value)
    if parts.scheme in ("http", "https") and parts.netloc:
        return None
    if parts.scheme == "file" and parts.path:
        return None
    return "must be an http://, https:// or file:// URL of a folder holding NAME.tar.gz"


def _list() -> None:
    from rich.console import Console
    from rich.table import Table

    from p2p_deploy.train.dataset_catalog import CATALOG, DEFAULT_MIRROR

    table = Table(title=f"pix2pix datasets ({DEFAULT_MIRROR}/NAME.tar.gz)")
    table.add_column("name", no_wrap=True)
    for col in ("A (left)", "B (right)", "usual task"):
        table.add_column(col)
    table.add_column("--direction", no_wrap=True)
    table.add_column("images")
    table.add_column("size", no_wrap=True)
    for e in CATALOG:
        table.add_row(e.name, e.a, e.b, e.usual_task, e.usual_direction, e.images, e.size)
    console = Console(soft_wrap=True)
    if not console.is_terminal:  # a pipe or a file: no terminal width to fit, keep rows whole
        console.width = 160
    console.print(table)


def _download(opts, show: bool) -> None:  # noqa: ANN001 - DownloadOptions, imported lazily
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from p2p_deploy.train.download import download_dataset

    console = Console(stderr=True)
    if show:
        bar = Progress(
            TextColumn(f"{opts.name}.tar.gz"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        state: dict = {}

        def on_progress(done: int, total: int | None) -> None:
            if "task" not in state:
                state["task"] = bar.add_task("download", total=total, completed=done)
            bar.update(state["task"], completed=done, total=total)

        with bar:
            result = download_dataset(opts, on_progress)
    else:
        result = download_dataset(opts)
    if result.already_present:
        typer.echo(f"{result.folder}: already there, nothing downloaded.", err=True)
    else:
        resumed = f", resumed at byte {result.resumed_from}" if result.resumed_from else ""
        check = f", {result.checksum}" if result.checksum else ", no checksum on the mirror"
        typer.echo(
            f"downloaded {result.downloaded_bytes} bytes{resumed}{check}; unpacked to "
            f"{result.folder}",
            err=True,
        )
    splits = ", ".join(f"{k} {v}" for k, v in result.splits.items()) or "no splits found"
    typer.echo(f"splits: {splits}", err=True)
    if result.entry is not None:
        e = result.entry
        typer.echo(
            f"A (left) = {e.a}, B (right) = {e.b}; {e.usual_task} is --direction "
            f"{e.usual_direction}",
            err=True,
        )
    typer.echo(f"train with: {result.train_hint()}", err=True)
