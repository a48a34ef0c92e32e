"""Faults of `p2p run` with real files (issue 11): a full disk (real tmpfs), odd-sized videos,
stale temporary files, the project's own output folders, same-stem videos, links into the
output folder, hidden files. The pipeline runs a small exact runner (colour negation); the
command line is covered in tests/cli/test_run_faults.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime.media_files import random_bgr, write_video
from smallfs import fill, tmpfs

from p2p_deploy.atomic import clean_stale_temps, temp_tag
from p2p_deploy.errors import DataError
from p2p_deploy.media.files import OUTPUT_MARKER, plan_inputs
from p2p_deploy.media.video import VideoSink, VideoSource
from p2p_deploy.pipeline.options import RunOptions
from p2p_deploy.pipeline.run import prepare, run_pipeline
from p2p_deploy.runners.base import Runner


class Negate(Runner):
    """x -> -x at 64 x 64 (255 - pixel in uint8): exact, and noise stays noise."""

    backend = "negate"

    def __init__(self) -> None:
        super().__init__()
        self.image_size = 64
        self.is_active = True  # nothing to load: usable without a ``with``

    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
        return -batch


def _files(root: Path) -> list[str]:
    """Every file under ``root`` (relative), the output folder's marker left out."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != OUTPUT_MARKER
    )


def _run(src: Path, out: Path | None, **opts) -> tuple:
    options = RunOptions(**opts)
    prepared = prepare(src, out, options)
    return prepared, run_pipeline(prepared, Negate(), options)


def noise_video(path: Path, n: int, w: int = 64, h: int = 64, fps: float = 10.0) -> Path:
    """n frames of random noise (does not compress), written with OpenCV's own MJPEG writer,
    which stores any size exactly (OpenCV's FFmpeg writer would drop an odd row/column)."""
    vw = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), fps,
                         (w, h))  # fmt: skip
    assert vw.isOpened()
    for i in range(n):
        vw.write(random_bgr(h, w, i))
    vw.release()
    return path


def _video_shape(path: Path) -> tuple[int, int, int]:
    """(frames, width, height) as FFmpeg reads ``path`` back, counting decoded frames."""
    with VideoSource(path) as v:
        n = sum(1 for _ in v.frames())
        return n, v.width, v.height


# ---- item 2: a full disk ------------------------------------------------------------------


def test_video_that_does_not_fit_fails_and_gets_no_final_name(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), random_bgr(32, 32, 0))
    noise_video(src / "clip.avi", 40)
    with tmpfs(tmp_path / "fs", "1m") as fs:
        out = fs / "out"
        filler = fill(fs, leave=48 * 1024)  # the image fits, 40 frames of noise do not
        prepared, summary = _run(src, out)
        assert (summary.done, summary.failed, summary.exit_code) == (1, 1, 2)
        reason = summary.failures[0]["reason"]
        assert reason == f"{out / 'clip.mp4'}: cannot write (No space left on device).", reason
        assert _files(out) == ["a.png", "failures.json"]  # no clip.mp4, no temporary file
        assert json.loads((out / "failures.json").read_text())["failures"][0]["reason"] == reason

        filler.unlink()  # room again: the rerun redoes the video (it was never "there")
        prepared, summary = _run(src, out)
        assert [j.src.name for j in prepared.skipped] == ["a.png"]
        assert (summary.done, summary.failed, summary.exit_code) == (1, 0, 0)
        assert _video_shape(out / "clip.mp4") == (40, 64, 64)
        assert _files(out) == ["a.png", "clip.mp4"]


def test_full_disk_names_the_os_error_for_images_and_the_failures_list(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        cv2.imwrite(str(src / f"{i}.png"), random_bgr(32, 32, i))
    noise_video(src / "clip.avi", 3)
    with tmpfs(tmp_path / "fs", "256k") as fs:
        out = fs / "out"
        out.mkdir()
        fill(fs)
        _, summary = _run(src, out)
        assert (summary.done, summary.failed, summary.exit_code) == (0, 3, 1)
        for f in summary.failures:
            assert f["reason"].endswith(": cannot write (No space left on device)."), f
        assert summary.failures_error == (
            f"{out / 'failures.json'}: cannot write the list of failures (No space left on device)"
        )
        assert _files(out) == []


# ---- item 3: odd sizes --------------------------------------------------------------------


def test_odd_sized_video_keeps_its_size(tmp_path: Path, caplog) -> None:
    clip = noise_video(tmp_path / "clip.avi", 5, w=333, h=251)
    assert _video_shape(clip) == (5, 333, 251)  # the input really is odd-sized
    with caplog.at_level(logging.WARNING):
        prepared, summary = _run(clip, tmp_path / "out")  # default codec mp4v
    assert (summary.done, summary.failed) == (1, 0)
    # mp4v through OpenCV cannot hold 333x251: the video goes to MJPG/.avi at its own size.
    assert _files(tmp_path / "out") == ["clip.avi"]
    assert _video_shape(tmp_path / "out" / "clip.avi") == (5, 333, 251)
    assert "333x251 has an odd side" in caplog.text and "clip.avi" in caplog.text
    # The content is the translated input (negated noise, through a 64 px model and back).
    with VideoSource(tmp_path / "out" / "clip.avi") as v:
        first = next(iter(v.frames()))
    with VideoSource(clip) as v:
        src_first = next(iter(v.frames()))
    assert abs(float(first.mean()) - (255 - float(src_first.mean()))) < 8

    _, summary = _run(clip, tmp_path / "out2", codec="MJPG", side_by_side=True)
    assert _video_shape(tmp_path / "out2" / "clip.avi") == (5, 666, 251)

    # Even sizes keep the codec and container the user asked for.
    even = noise_video(tmp_path / "even.avi", 3, w=334, h=250)
    _run(even, tmp_path / "out3")
    assert _video_shape(tmp_path / "out3" / "even.mp4") == (3, 334, 250)


def test_sink_pads_odd_sizes_for_codecs_that_need_even_ones(tmp_path: Path, caplog) -> None:
    """--model-size outputs (size known only to the writer) are padded, never cut."""
    frames = [random_bgr(251, 333, i) for i in range(3)]
    with caplog.at_level(logging.WARNING):
        sink = VideoSink(tmp_path / "o.mp4", "mp4v", 10.0, 333, 251)
        for f in frames:
            sink.write(f)
        sink.finish()
    assert "written at 334x252" in caplog.text
    assert _video_shape(tmp_path / "o.mp4") == (3, 334, 252)
    sink = VideoSink(tmp_path / "o.avi", "MJPG", 10.0, 333, 251)
    for f in frames:
        sink.write(f)
    sink.finish()
    assert _video_shape(tmp_path / "o.avi") == (3, 333, 251)


def test_sink_does_not_rename_an_incomplete_video(tmp_path: Path) -> None:
    """A video whose file does not hold its frames is never given its final name."""
    sink = VideoSink(tmp_path / "o.mp4", "mp4v", 10.0, 64, 64)
    sink.write(random_bgr(64, 64, 0))
    sink._writer.release()  # the file is closed...
    sink.tmp.write_bytes(b"\x00" * 100)  # ...and its content lost (as a full disk leaves it)
    with pytest.raises(DataError, match="does not open as a video"):
        sink.finish()
    assert list(tmp_path.iterdir()) == []


# ---- item 7: stale temporary files --------------------------------------------------------


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_stale_temporaries_are_removed_live_ones_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    dead, tag = _dead_pid(), temp_tag()
    host = tag.split("-")[1]
    live = subprocess.Popen(["sleep", "60"])
    try:
        stale = [
            out / f".a.p2ptmp-{host}-{dead}-k3j2h1ab.tmp.png",
            out / "sub" / f".clip.p2ptmp-{host}-{dead}-zz_9x0qq.tmp.mp4",
        ]
        kept = [
            out / f".b.p2ptmp-{host}-{live.pid}-abcdefgh.tmp.png",  # a live writer
            out / f".c.p2ptmp-0a0a0a-{dead}-abcdefgh.tmp.png",  # another machine's
            out / ".c.k3j2h1ab.tmp.png",  # not our pattern (older versions, the user's)
            out / f".{tag}x.tmp.png",  # this very process
            out / "notes.p2ptmp.txt",
        ]
        for p in [*stale, *kept]:
            p.write_bytes(b"partial")
        stage = out / f".p2p-export.p2ptmp-{host}-{dead}-q1w2e3r4"
        (stage / "inner").mkdir(parents=True)
        assert sorted(clean_stale_temps(out)) == sorted([*stale, stage])
        assert all(p.exists() for p in kept) and not stage.exists()
    finally:
        live.kill()
        live.wait()


def test_export_staging_cleans_stale_folders(tmp_path: Path) -> None:
    """Export (and engine) staging goes through StagedFiles, which removes dead writers'
    staging folders on entering and names its own after its writer."""
    from p2p_deploy.atomic import StagedFiles

    host = temp_tag().split("-")[1]
    old = tmp_path / f".p2p-export.p2ptmp-{host}-{_dead_pid()}-a1b2c3d4"
    (old / "x").mkdir(parents=True)
    with StagedFiles(tmp_path, stem="p2p-export") as stage:
        assert stage.path.name.startswith(f".p2p-export.{temp_tag()}") and stage.path.is_dir()
        assert not old.exists()
    assert list(tmp_path.iterdir()) == []


# ---- item 8: the project's own output folders ---------------------------------------------


def test_single_image_output_is_not_read_back_as_input(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "x.png"), random_bgr(32, 32, 0))
    prepared, summary = _run(src / "x.png", None)
    assert prepared.plan.out_dir == src / "x_p2p" and summary.done == 1
    assert (src / "x_p2p" / OUTPUT_MARKER).is_file()

    prepared, summary = _run(src, None)  # the whole folder later: x_p2p/ is not an input
    assert [j.rel for j in prepared.plan.jobs] == ["x.png"]
    assert prepared.plan.own_outputs == [src / "x_p2p"]
    assert summary.own_outputs == 1 and "1 output folder(s) of earlier runs" in summary.line()
    assert _files(tmp_path / "in_p2p") == ["x.png"]


# ---- item 9: videos of the same stem ------------------------------------------------------


def test_same_stem_videos_are_both_kept(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_video(src / "clip.avi", 4)
    write_video(src / "clip.mkv", 3, codec="MJPG")
    write_video(src / "solo.avi", 2)
    _, summary = _run(src, tmp_path / "out")
    assert (summary.done, summary.failed) == (3, 0)
    assert _files(tmp_path / "out") == ["clip.avi.mp4", "clip.mkv.mp4", "solo.mp4"]
    assert _video_shape(tmp_path / "out" / "clip.avi.mp4")[0] == 4
    assert _video_shape(tmp_path / "out" / "clip.mkv.mp4")[0] == 3


def test_first_twins_failure_does_not_hide_the_seconds_error(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "clip.avi").write_bytes(b"RIFF not really a video")
    (src / "clip.mp4").write_bytes(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 64)
    _, summary = _run(src, tmp_path / "out")
    reasons = {Path(f["path"]).name: f["reason"] for f in summary.failures}
    assert set(reasons) == {"clip.avi", "clip.mp4"}
    for name, reason in reasons.items():  # each its own error, neither "already taken"
        assert reason.startswith(f"{src / name}: ") and "FFmpeg cannot open" in reason, reason


# ---- item 10: links into the output folder ------------------------------------------------


def test_input_link_into_the_output_folder_is_refused(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    target = out / "a.png"
    cv2.imwrite(str(target), random_bgr(32, 32, 0))
    before = target.read_bytes()
    os.symlink(target, src / "a.png")
    cv2.imwrite(str(src / "b.png"), random_bgr(32, 32, 1))
    _, summary = _run(src, out, overwrite=True)
    assert (summary.done, summary.failed) == (1, 1)
    assert summary.failures[0]["reason"] == (
        f"{src / 'a.png'}: is a link to {target}, inside the output folder {out}; "
        "an input is never overwritten."
    )
    assert target.read_bytes() == before and not target.is_symlink()
    with pytest.raises(DataError, match="output folder is the input's own folder"):
        plan_inputs(src / "a.png", out, "mp4v")  # the link itself as INPUT


# ---- item 11: hidden files ----------------------------------------------------------------


def test_hidden_files_are_counted_not_silently_dropped(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / ".cache").mkdir(parents=True)
    cv2.imwrite(str(src / "a.png"), random_bgr(32, 32, 0))
    cv2.imwrite(str(src / ".b.png"), random_bgr(32, 32, 1))
    cv2.imwrite(str(src / ".cache" / "c.png"), random_bgr(32, 32, 2))
    prepared, summary = _run(src, tmp_path / "out")
    assert [j.rel for j in prepared.plan.jobs] == ["a.png"]
    assert sorted(p.name for p in prepared.plan.hidden) == [".b.png", ".cache"]
    assert summary.hidden == 2 and summary.to_dict()["hidden"] == 2
    assert "hidden 2 (dot files/folders, not read)" in summary.line()


def test_output_folders_without_marker_are_recognised_by_their_sibling(tmp_path: Path) -> None:
    """Outputs of versions before the marker (or whose marker could not be written): the
    default folder ``x_p2p`` beside ``x.png``, ``photos_p2p`` beside ``photos``; a user's own
    folder that merely ends in ``_p2p`` is read."""
    src = tmp_path / "in"
    for d in ("x_p2p", "photos", "photos_p2p", "holiday_p2p"):
        (src / d).mkdir(parents=True)
    cv2.imwrite(str(src / "x.png"), random_bgr(32, 32, 0))
    for i, rel in enumerate(
        ("x_p2p/x.png", "photos/p.png", "photos_p2p/p.png", "holiday_p2p/h.png")
    ):
        cv2.imwrite(str(src / rel), random_bgr(32, 32, i + 1))
    plan = plan_inputs(src, tmp_path / "out", "mp4v")
    assert [j.rel for j in plan.jobs] == ["x.png", "holiday_p2p/h.png", "photos/p.png"]
    assert sorted(p.name for p in plan.own_outputs) == ["photos_p2p", "x_p2p"]


def test_a_remaining_clash_says_which_input_won(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("clip.avi", "clip.mp4", "clip.avi.mp4"):
        write_video(src / name, 2, codec="mp4v" if name.endswith(".mp4") else "MJPG")
    _, summary = _run(src, tmp_path / "out")
    assert summary.done == 2 and [f["reason"] for f in summary.failures] == [
        f"{src / 'clip.avi.mp4'}: not written, as its output clip.avi.mp4 is clip.avi's "
        "(rename one of them)."
    ]
    assert _files(tmp_path / "out") == ["clip.avi.mp4", "clip.mp4.mp4", "failures.json"]
