"""``first_line``: the one helper that turns a library's error into a message fragment."""

from __future__ import annotations

from p2p_deploy.errors import first_line


def test_first_line_keeps_the_first_line_and_its_limit():
    exc = RuntimeError("  Load model failed. See the log.\nstack frame 1\nstack frame 2")
    assert first_line(exc) == "Load model failed. See the log"
    assert first_line(exc, sentence=True) == "Load model failed"
    assert first_line(ValueError("x" * 500), limit=120) == "x" * 117 + "..."
    assert len(first_line(ValueError("y" * 500))) == 200
    assert first_line(KeyError()) == "KeyError"  # an empty message names the class
    assert first_line(OSError("\n\n")) == "OSError"
