"""``run_export``: the function behind ``p2p export``; the work is done by one
:class:`~p2p_deploy.export.exporter.Exporter` (one method per format, one wrapper)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from p2p_deploy.export.exporter import Exporter, ExportResult
from p2p_deploy.export.options import ExportOptions

if TYPE_CHECKING:
    from p2p_deploy.export.calibration import SyntheticProvider


def run_export(
    opts: ExportOptions,
    on_step: Callable[[str], None] | None = None,
    synthetic: SyntheticProvider | None = None,
) -> ExportResult:
    """Export a generator checkpoint as ``opts`` says and return what was written and found
    (see :class:`~p2p_deploy.export.exporter.Exporter`: ``on_step``, ``synthetic``, errors)."""
    return Exporter(opts, on_step, synthetic).run()
