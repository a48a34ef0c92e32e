"""Regenerate ``bench/reports/README.md`` from the committed ``*/report.json``:
``python -m p2p_deploy.bench.index [REPORTS_DIR]`` (default: ``bench/reports`` under the current
folder, i.e. run it from the repository's root)."""

from __future__ import annotations

import sys
from pathlib import Path

from p2p_deploy.bench.report import write_index


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path("bench") / "reports"
    print(write_index(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
