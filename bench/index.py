"""Regenerate ``bench/reports/README.md`` from the committed ``*/report.json``:
``python -m bench.index [REPORTS_DIR]``."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.environment import REPO_ROOT
from bench.report import write_index


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else REPO_ROOT / "bench" / "reports"
    print(write_index(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
