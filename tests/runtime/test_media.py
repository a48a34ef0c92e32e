"""Media I/O with real files: input discovery, robust image reads, resize modes, videos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime.media_files import BAD_IMAGES, GOOD_IMAGES, random_bgr, write_video

from p2p_deploy.errors import DataError
from p2p_deploy.media.files import plan_inputs
from p2p_deploy.media.images import read_image, write_image
from p2p_deploy.media.resize import SQUARE_MODES, fit, restore, source_view
from p2p_deploy.media.video import VideoSink, VideoSource, codec_works


def test_plan_mirrors_tree_and_counts_ignored(image_tree: Path, tmp_path: Path) -> None:
    plan = plan_inputs(image_tree, tmp_path / "out", "mp4v")
    rels = sorted(j.rel for j in plan.jobs)
    assert rels == sorted(GOOD_IMAGES + BAD_IMAGES)
    assert [p.name for p in plan.ignored] == ["notes.txt"]
    job = next(j for j in plan.jobs if j.rel == "sub/c.bmp")
    assert job.dst == (tmp_path / "out" / "sub" / "c.bmp").resolve()


def test_plan_refuses_unsafe_outputs(image_tree: Path) -> None:
    with pytest.raises(DataError, match="equals the input"):
        plan_inputs(image_tree, image_tree, "mp4v")
    with pytest.raises(DataError, match="inside the input"):
        plan_inputs(image_tree, image_tree / "out", "mp4v")
    with pytest.raises(DataError, match="input's own folder"):
        plan_inputs(image_tree / "a.jpg", image_tree, "mp4v")
    with pytest.raises(DataError, match="not an image"):
        plan_inputs(image_tree / "notes.txt", None, "mp4v")


def test_video_output_takes_codec_container(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "clip.avi", 2)
    plan = plan_inputs(clip, None, "mp4v")
    assert plan.jobs[0].dst == (tmp_path / "clip_p2p" / "clip.mp4").resolve()


def test_read_image_converts_odd_formats(image_tree: Path) -> None:
    for name in ("gray.png", "rgba.png", "deep.png"):
        img = read_image(image_tree / name)
        assert img.dtype == np.uint8 and img.shape == (24, 24, 3), name
    deep = read_image(image_tree / "deep.png")
    assert np.array_equal(deep, random_bgr(24, 24, 6))  # 16-bit x257 scales back exactly


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.jpg", "empty file"),
        ("fake.png", "corrupt or truncated"),
        ("sub/truncated.jpg", "corrupt or truncated"),
    ],
)
def test_read_image_refuses_bad_files(image_tree: Path, name: str, reason: str) -> None:
    with pytest.raises(DataError, match=reason) as info:
        read_image(image_tree / name)
    assert str(image_tree / name) in str(info.value) and "\n" not in str(info.value)


def test_read_image_refuses_huge(image_tree: Path) -> None:
    with pytest.raises(DataError, match="above the limit"):
        read_image(image_tree / "d.webp", max_pixels=1000)


def test_write_image_is_atomic(tmp_path: Path) -> None:
    write_image(tmp_path / "x" / "o.png", random_bgr(8, 8, 0))
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["o.png"]
    with pytest.raises(DataError):
        write_image(tmp_path / "x" / "o.unknownext", random_bgr(8, 8, 0))
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["o.png"]


@pytest.mark.parametrize("mode", SQUARE_MODES)
@pytest.mark.parametrize(("h", "w"), [(30, 50), (50, 30), (32, 32), (7, 100)])
def test_resize_modes_fit_and_restore(mode: str, h: int, w: int) -> None:
    frame = random_bgr(h, w, 0)
    model_in, geo = fit(frame, 32, mode)
    assert model_in.shape == (32, 32, 3)
    out = restore(model_in, geo, keep_size=True)
    side = source_view(frame, model_in, geo, keep_size=True)
    assert out.shape == side.shape
    if mode == "crop":
        assert out.shape[:2] == (min(h, w), min(h, w))
    else:
        assert out.shape[:2] == (h, w)
    small = restore(model_in, geo, keep_size=False)
    assert small.shape == source_view(frame, model_in, geo, keep_size=False).shape
    if mode == "pad":  # letterbox: padding is black and is cropped off again
        x0, y0, x1, y1 = geo.model_box
        assert model_in[:y0].sum() == 0 and model_in[y1:].sum() == 0
        assert max(small.shape[:2]) == 32


def test_pad_restore_keeps_flat_colour() -> None:
    frame = np.full((20, 60, 3), 90, np.uint8)
    model_in, geo = fit(frame, 32, "pad")
    assert np.array_equal(restore(model_in, geo, keep_size=True), frame)


def test_video_roundtrip_and_atomic_sink(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "in.avi", 7, fps=12.0)
    with VideoSource(clip) as src:
        frames = list(src.frames())
        assert (src.fps, src.frame_count, len(frames)) == (12.0, 7, 7)
    sink = VideoSink(tmp_path / "out" / "o.mp4", "mp4v", 12.0, 48, 36)
    assert not (tmp_path / "out" / "o.mp4").exists()  # written under a temp name
    for f in frames:
        sink.write(f)
    sink.finish()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["o.mp4"]
    cap = cv2.VideoCapture(str(tmp_path / "out" / "o.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 7 and cap.get(cv2.CAP_PROP_FPS) == 12.0
    cap.release()
    aborted = VideoSink(tmp_path / "out" / "p.mp4", "mp4v", 12.0, 48, 36)
    aborted.write(frames[0])
    aborted.abort()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["o.mp4"]


def test_unreadable_video_and_bad_codec(tmp_path: Path) -> None:
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="unreadable video"):
        VideoSource(tmp_path / "junk.mp4")
    assert codec_works("mp4v")
    # Whether avc1 (H.264) writes depends on the OpenCV build: the sink must agree with the probe.
    if codec_works("avc1", ".mp4"):
        VideoSink(tmp_path / "o.mp4", "avc1", 10.0, 16, 16).abort()
    else:
        with pytest.raises(DataError, match="codecs that work: mp4v") as info:
            VideoSink(tmp_path / "o.mp4", "avc1", 10.0, 16, 16)
        assert "avc1" in str(info.value)
    with pytest.raises(DataError, match="not a four-character code"):
        VideoSink(tmp_path / "o.mp4", "h264x", 10.0, 16, 16)
    assert list(tmp_path.iterdir()) == [tmp_path / "junk.mp4"]  # no temp file left behind


def test_video_sink_unwritable_place_is_a_data_error(tmp_path: Path) -> None:
    """A real failing place (works as root too): the output's parent is a regular file."""
    (tmp_path / "taken").write_text("a file, not a folder")
    target = tmp_path / "taken" / "o.mp4"
    with pytest.raises(DataError, match="cannot write") as info:
        VideoSink(target, "mp4v", 10.0, 16, 16)
    assert str(target) in str(info.value) and "\n" not in str(info.value)


def test_read_image_refuses_a_jpeg_cut_near_its_end(tmp_path: Path) -> None:
    """Some OpenCV decoders (cv2.imread here) gray-fill a cut-off JPEG; the runtime refuses it
    whichever decoder path the installed OpenCV takes."""
    good = cv2.imencode(".jpg", random_bgr(64, 64, 8))[1].tobytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good[:-40])
    with pytest.raises(DataError, match="truncated") as info:
        read_image(cut)
    assert str(cut) in str(info.value)
    (tmp_path / "ok.jpg").write_bytes(good + b"trailer bytes after the end marker")
    assert read_image(tmp_path / "ok.jpg").shape == (64, 64, 3)
