"""Runtime test fixtures: real image folders (good and bad) on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime.media_files import make_image_tree


@pytest.fixture()
def image_tree(tmp_path: Path) -> Path:
    """photos/ with good images, odd formats (gray, RGBA, 16-bit) and bad files; see
    :func:`runtime.media_files.make_image_tree`."""
    return make_image_tree(tmp_path / "photos")
