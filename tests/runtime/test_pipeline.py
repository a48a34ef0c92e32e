"""The threaded pipeline with real files: order, partial batches, failures, skipping, atomic
outputs, bounded memory. Uses a small exact runner (colour negation) so that every output pixel
can be checked against its own input; the real model runners are covered in test_runners and
through the CLI tests."""

from __future__ import annotations

import gc
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime.media_files import BAD_IMAGES, GOOD_IMAGES, random_bgr, write_video

from p2p_deploy.media.files import OUTPUT_MARKER
from p2p_deploy.pipeline.items import Frame
from p2p_deploy.pipeline.options import RunOptions
from p2p_deploy.pipeline.run import prepare, run_pipeline
from p2p_deploy.runners.base import Runner


class NegateRunner(Runner):
    """x -> -x in [-1, 1] (255 - pixel in uint8): exact, so outputs identify their inputs."""

    backend = "negate"

    def __init__(self, probe_every: int = 0) -> None:
        super().__init__()
        self.image_size = 32
        self.is_active = True  # nothing to load: usable without a ``with``
        self.calls: list[int] = []
        self.probe_every = probe_every
        self.peak_live_frames = 0

    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape[0])
        if self.probe_every and len(self.calls) % self.probe_every == 0:
            live = sum(type(o) is Frame for o in gc.get_objects())
            self.peak_live_frames = max(self.peak_live_frames, live)
        return -batch


def _files(root: Path) -> list[str]:
    """Every file under ``root`` but the output folder's marker."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != OUTPUT_MARKER
    )


@pytest.mark.parametrize("batch", [1, 3, 4])
def test_order_and_partial_batches(tmp_path: Path, batch: int) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(7):  # 7 frames: no batch size here divides it
        cv2.imwrite(str(src / f"{i:02d}.png"), random_bgr(32, 32, i))
    runner = NegateRunner()
    opts = RunOptions(batch=batch)
    summary = run_pipeline(prepare(src, tmp_path / "out", opts), runner, opts)
    assert (summary.done, summary.failed, summary.frames) == (7, 0, 7)
    assert sum(runner.calls) == 7 and max(runner.calls) <= batch
    for i in range(7):
        out = cv2.imread(str(tmp_path / "out" / f"{i:02d}.png"))
        assert np.array_equal(out.astype(int), 255 - random_bgr(32, 32, i).astype(int)), i


def test_bad_inputs_listed_and_rest_processed(image_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    opts = RunOptions(batch=2)
    summary = run_pipeline(prepare(image_tree, out, opts), NegateRunner(), opts)
    assert summary.done == len(GOOD_IMAGES) and summary.failed == len(BAD_IMAGES)
    assert summary.ignored == 1 and summary.exit_code == 2
    assert _files(out) == sorted([*GOOD_IMAGES, "failures.json"])
    failures = json.loads((out / "failures.json").read_text())["failures"]
    assert sorted(Path(f["path"]).relative_to(image_tree).as_posix() for f in failures) == sorted(
        BAD_IMAGES
    )
    assert all(f["path"] in f["reason"] for f in failures)
    # keep-size: every output has its input's size (gray/RGBA/16-bit converted to 3 channels)
    assert cv2.imread(str(out / "b.png")).shape == (30, 40, 3)
    assert cv2.imread(str(out / "deep.png")).shape == (24, 24, 3)

    # rerun: good outputs skipped, bad ones retried and still failing
    again = run_pipeline(prepare(image_tree, out, opts), NegateRunner(), opts)
    assert (again.done, again.skipped, again.failed, again.exit_code) == (0, len(GOOD_IMAGES), 3, 2)
    redo = RunOptions(batch=2, overwrite=True)
    assert run_pipeline(prepare(image_tree, out, redo), NegateRunner(), redo).done == len(
        GOOD_IMAGES
    )


def test_all_bad_is_exit_1(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "x.jpg").write_bytes(b"")
    opts = RunOptions()
    summary = run_pipeline(prepare(src, tmp_path / "out", opts), NegateRunner(), opts)
    assert summary.exit_code == 1


def test_video_keeps_count_and_fps_and_side_by_side(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_video(src / "clip.avi", 9, fps=15.0, size=(48, 36))
    cv2.imwrite(str(src / "still.png"), random_bgr(32, 32, 0))
    (src / "broken.mkv").write_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 64)
    opts = RunOptions(batch=4, side_by_side=True, resize="pad")
    summary = run_pipeline(prepare(src, tmp_path / "out", opts), NegateRunner(), opts)
    assert (summary.done, summary.failed, summary.frames) == (2, 1, 10)
    cap = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 9 and cap.get(cv2.CAP_PROP_FPS) == 15.0
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (
        96,
        36,
    )
    cap.release()
    assert cv2.imread(str(tmp_path / "out" / "still.png")).shape == (32, 64, 3)
    assert not [p for p in (tmp_path / "out").iterdir() if ".tmp" in p.name]


def test_interrupted_video_leaves_no_partial_output(tmp_path: Path) -> None:
    write_video(tmp_path / "clip.avi", 30)

    class Interrupting(NegateRunner):
        def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
            if len(self.calls) == 5:
                raise KeyboardInterrupt
            return super()._infer_chunk(batch)

    opts = RunOptions(batch=2)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(prepare(tmp_path / "clip.avi", tmp_path / "out", opts), Interrupting(), opts)
    assert _files(tmp_path / "out") == [] if (tmp_path / "out").exists() else True


@pytest.mark.slow
def test_memory_is_bounded_by_the_queues(tmp_path: Path) -> None:
    """Structural: frames alive at once stay within the queue bounds for a long video."""
    write_video(tmp_path / "long.avi", 150, size=(32, 32))
    opts = RunOptions(batch=2)
    runner = NegateRunner(probe_every=5)
    summary = run_pipeline(prepare(tmp_path / "long.avi", tmp_path / "out", opts), runner, opts)
    assert summary.frames == 150
    # What RunOptions says may be in flight (decoded ahead, in the runner, waiting for or in
    # the video's writer), plus the batch being gathered.
    bound = opts.frames_in_flight + opts.batch
    assert 0 < runner.peak_live_frames <= bound


def test_writer_crash_is_raised_not_hidden_and_failures_kept(tmp_path: Path) -> None:
    """An unexpected error in the writer thread (here from the on_frame callback, which runs
    there) reaches the caller as itself, not as the pipeline's internal Stopped, and the
    failures met before it are still written to failures.json."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "a_broken.png").write_bytes(b"not a png")
    for i in range(12):
        cv2.imwrite(str(src / f"b{i:02d}.png"), random_bgr(32, 32, i))

    def on_frame(n: int) -> None:
        raise OSError(28, "No space left on device")

    opts = RunOptions(batch=1, workers=1)
    prepared = prepare(src, tmp_path / "out", opts)
    with pytest.raises(OSError, match="No space left") as info:
        run_pipeline(prepared, NegateRunner(), opts, on_frame=on_frame)
    assert type(info.value) is OSError
    failures = json.loads((tmp_path / "out" / "failures.json").read_text())["failures"]
    assert [Path(f["path"]).name for f in failures] == ["a_broken.png"]


def _mixed_folder(root: Path) -> Path:
    """Images of several sizes, two videos (one cut short), a corrupt image, a text file."""
    root.mkdir()
    for i in range(9):
        cv2.imwrite(str(root / f"img{i:02d}.png"), random_bgr(24 + 4 * i, 40 - 2 * i, i))
    cv2.imwrite(str(root / "photo.jpg"), random_bgr(50, 30, 99))
    write_video(root / "clip.avi", 11, fps=12.0, size=(48, 36))
    write_video(root / "short.avi", 30, size=(32, 32))
    data = (root / "short.avi").read_bytes()
    (root / "short.avi").write_bytes(data[: len(data) // 3])  # truncated: decodes a third
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    (root / "notes.txt").write_text("not an input")
    return root


def test_workers_1_and_4_give_identical_outputs_order_and_failures(tmp_path: Path) -> None:
    src = _mixed_folder(tmp_path / "in")
    results = {}
    for workers in (1, 2, 4):
        out = tmp_path / f"out{workers}"
        opts = RunOptions(batch=3, workers=workers)
        summary = run_pipeline(prepare(src, out, opts), NegateRunner(), opts)
        files = {name: (out / name).read_bytes() for name in _files(out)}
        results[workers] = (summary.done, summary.frames, summary.failures, files)
        assert summary.workers == workers and set(summary.stage_seconds) == {
            "decode", "copy", "infer", "encode"
        }  # fmt: skip
    one, four = results[1], results[4]
    assert results[2] == one
    assert one[:2] == four[:2] == (11, 21)  # 10 images + 1 video; 10 + 11 frames
    assert [f["path"] for f in one[2]] == [f["path"] for f in four[2]]
    assert [Path(f["path"]).name for f in one[2]] == ["corrupt.png", "short.avi"]
    assert one[2] == four[2]  # the same reasons, in input order
    assert one[3].keys() == four[3].keys() and "clip.mp4" in one[3]
    for name in one[3]:
        assert one[3][name] == four[3][name], name  # byte for byte


def test_several_workers_keep_each_output_with_its_input(tmp_path: Path) -> None:
    """Many small images through 4 worker threads: every output is its own
    input negated (nothing swapped between threads), whatever finishes first."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(40):
        cv2.imwrite(str(src / f"{i:03d}.png"), random_bgr(32, 32, i))
    opts = RunOptions(batch=5, workers=4)
    summary = run_pipeline(prepare(src, tmp_path / "out", opts), NegateRunner(), opts)
    assert (summary.done, summary.failed) == (40, 0)
    for i in range(40):
        got = cv2.imread(str(tmp_path / "out" / f"{i:03d}.png"))
        np.testing.assert_array_equal(got, 255 - random_bgr(32, 32, i))


def test_one_worker_thread_decodes_and_encodes(tmp_path: Path, monkeypatch) -> None:
    """``--workers 1`` is one thread doing both sides (the pool is shared), and with a video
    longer than its queues among images it still finishes: no task waits for another, so the
    single thread never sits blocked while the work it waits for is queued behind it."""
    import threading

    from p2p_deploy.pipeline import stages

    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        cv2.imwrite(str(src / f"a{i}.png"), random_bgr(32, 32, i))
    write_video(src / "b_long.avi", 60, size=(32, 32))
    write_video(src / "c_long.avi", 45, size=(32, 32))
    for i in range(5):
        cv2.imwrite(str(src / f"d{i}.png"), random_bgr(32, 32, 10 + i))
    threads: dict[str, set[str]] = {"decode": set(), "encode": set()}

    class Recording(stages.StageClock):
        def add(self, stage: str, seconds: float) -> None:
            if stage in threads:
                threads[stage].add(threading.current_thread().name)
            super().add(stage, seconds)

    monkeypatch.setattr("p2p_deploy.pipeline.run.StageClock", Recording)
    opts = RunOptions(batch=2, workers=1)
    assert opts.video_queue < 45  # both videos park their decoder and wait for their writer
    prepared = prepare(src, tmp_path / "out", opts)
    finished, summary = _in_thread(lambda: run_pipeline(prepared, NegateRunner(), opts))
    assert finished, "one worker thread deadlocked"
    assert not isinstance(summary, BaseException), summary
    assert (summary.done, summary.failed, summary.frames) == (12, 0, 10 + 60 + 45)
    assert len(threads["decode"]) == 1 and threads["decode"] == threads["encode"]
    (name,) = threads["decode"]
    assert name.startswith("p2p-worker")


def _in_thread(fn, timeout: float = 30.0):
    """``fn()`` on a daemon thread; (finished, result or exception) after ``timeout`` s (a
    hang shows as not finished instead of hanging the suite)."""
    import threading

    box: list = []

    def body() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box.append(exc)

    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(timeout)
    return (not t.is_alive()), (box[0] if box else None)


def test_an_unexpected_submitter_error_is_raised_not_a_hang(tmp_path: Path, monkeypatch) -> None:
    """The submitter thread hands its unexpected errors to the batcher, which re-raises them;
    before, the thread died silently and the batcher waited for the next stream for ever."""
    import p2p_deploy.pipeline.run as run_mod

    src = tmp_path / "in"
    src.mkdir()
    for i in range(6):
        cv2.imwrite(str(src / f"{i:02d}.png"), random_bgr(32, 32, i))
    real_put, calls = run_mod.put, []

    def failing_put(q, item, stop):
        calls.append(item)
        if len(calls) == 3:
            raise MemoryError("out of memory in the submitter")
        return real_put(q, item, stop)

    monkeypatch.setattr(run_mod, "put", failing_put)
    opts = RunOptions(batch=2, workers=2)
    prepared = prepare(src, tmp_path / "out", opts)
    finished, result = _in_thread(lambda: run_pipeline(prepared, NegateRunner(), opts))
    assert finished, "run_pipeline hung after the submitter died"
    assert isinstance(result, MemoryError) and "submitter" in str(result)


def test_short_videos_wait_for_a_writer_instead_of_piling_up(
    tmp_path: Path, monkeypatch
) -> None:
    """Many videos shorter than their writer queue, with slow writers (the GPU outruns the
    encoders): at most ``opts.video_writers`` videos are open for writing at once, instead of
    one per video with all its frames; outputs and order stay the same."""
    import threading
    import time

    from p2p_deploy.pipeline.stages import VideoWriter

    src = tmp_path / "in"
    src.mkdir()
    for i in range(8):
        write_video(src / f"clip{i}.avi", 3, size=(32, 32))
    lock, live, peak = threading.Lock(), [0], [0]
    real_init, real_take, real_end = VideoWriter.__init__, VideoWriter._take, VideoWriter._end

    def counting_init(self, *args):
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        real_init(self, *args)

    def slow_take(self, item):
        time.sleep(0.03)
        return real_take(self, item)

    def counting_end(self):
        with lock:
            live[0] -= 1
        real_end(self)

    monkeypatch.setattr(VideoWriter, "__init__", counting_init)
    monkeypatch.setattr(VideoWriter, "_take", slow_take)
    monkeypatch.setattr(VideoWriter, "_end", counting_end)
    opts = RunOptions(batch=2, workers=1)
    prepared = prepare(src, tmp_path / "out", opts)
    finished, summary = _in_thread(lambda: run_pipeline(prepared, NegateRunner(), opts))
    assert finished and not isinstance(summary, BaseException), summary
    assert (summary.done, summary.frames) == (8, 24)
    assert live[0] == 0 and 1 <= peak[0] <= opts.video_writers == 2


def test_the_pool_finishes_tasks_queued_by_tasks_then_ends_its_threads() -> None:
    """A video's decoder and writer queue their next step from inside a task: finish() waits
    for those too, and the pool's threads end with it (a run leaves no thread behind)."""
    from p2p_deploy.pipeline.stages import Workers

    stop = threading.Event()
    pool = Workers(3, stop)
    done: list[int] = []
    lock = threading.Lock()

    def step(i: int) -> None:
        with lock:
            done.append(i)
        if i % 100 < 99:  # 50 chains of 100 steps, each queued by the one before
            pool.submit(step, i + 1)

    for chain in range(50):
        pool.submit(step, 100 * chain)
    pool.finish()
    assert sorted(done) == list(range(5000))
    assert not [t for t in pool._threads if t.is_alive()]
    assert not stop.is_set() and pool.error is None


def test_the_pool_raises_the_first_error_and_abort_drops_queued_tasks() -> None:
    """A task's unexpected error stops the run: finish() raises it, nothing more is queued;
    abort() drops what was queued (it never runs), lets the running task see the stop, and
    closes what tasks held open."""
    from p2p_deploy.pipeline.stages import Closable, Workers

    stop = threading.Event()
    pool = Workers(1, stop)
    started, ran = threading.Event(), []

    def boom() -> None:
        raise ValueError("a task failed")

    def blocking() -> None:
        started.set()
        while not stop.wait(0.01):
            pass

    pool.submit(boom)
    with pytest.raises(ValueError, match="a task failed"):
        pool.finish()
    assert stop.is_set()
    pool.submit(ran.append, "after the stop")  # ignored: the run is stopping
    pool.abort()
    assert ran == [] and not [t for t in pool._threads if t.is_alive()]

    class Held(Closable):
        closed = False

        def close(self) -> None:
            Held.closed = True

    stop2 = threading.Event()
    pool2 = Workers(1, stop2)
    pool2.submit(blocking)
    assert started.wait(5)
    for i in range(100):
        pool2.submit(ran.append, i)  # queued behind the blocking task
    pool2.opened(Held())
    stop2.set()
    pool2.abort()
    assert ran == [] and Held.closed
    assert not [t for t in pool2._threads if t.is_alive()]


def test_bound_by_counts_decode_and_encode_on_the_same_threads() -> None:
    """Decode and encode share the pool's threads, so the pool is busy (3 + 1) / 2 = 2 s of
    the wall per thread, more than the model's 1.5 s: the run is bound by the pool, named
    for its larger stage (decode). With 4 threads it is 1 s, and the model bounds it."""
    from p2p_deploy.pipeline.summary import RunSummary

    seconds = {"decode": 3.0, "encode": 1.0, "infer": 1.5, "copy": 0.1}
    assert RunSummary(workers=2, seconds=2.5, stage_seconds=seconds).bound_by() == "decode"
    assert RunSummary(workers=4, seconds=2.5, stage_seconds=seconds).bound_by() == "model"
    swapped = {**seconds, "decode": 1.0, "encode": 3.0}
    assert RunSummary(workers=2, seconds=2.5, stage_seconds=swapped).bound_by() == "encode"
    assert RunSummary(workers=2).bound_by() is None


def test_an_unexpected_error_finishing_a_video_removes_its_temporary_file(
    tmp_path: Path, monkeypatch
) -> None:
    """An error other than DataError while a video's file is being finished (an OpenCV error,
    MemoryError) is raised, and the half-written temporary file is removed, not left in the
    output folder (the writer keeps the sink open until finish returns, so the pool's abort
    still sees it)."""
    from p2p_deploy.media.video import VideoSink

    write_video(tmp_path / "clip.avi", 12, size=(32, 32))

    def crashing_finish(self) -> None:
        raise RuntimeError("the encoder crashed while closing the file")

    monkeypatch.setattr(VideoSink, "finish", crashing_finish)
    opts = RunOptions(batch=2, workers=1)
    prepared = prepare(tmp_path / "clip.avi", tmp_path / "out", opts)
    finished, result = _in_thread(lambda: run_pipeline(prepared, NegateRunner(), opts))
    assert finished, "run_pipeline hung after the writer crashed"
    assert isinstance(result, RuntimeError) and "closing the file" in str(result)
    assert not [p for p in (tmp_path / "out").iterdir() if ".tmp" in p.name]


def _alive_workers(before: set) -> list:
    """The pool threads started since ``before`` that are still alive (after a short grace)."""
    new = [t for t in threading.enumerate() if t.name.startswith("p2p-") and t not in before]
    for t in new:
        t.join(2)
    return [t for t in new if t.is_alive()]


def test_ctrl_c_while_the_run_is_being_set_up_leaves_no_pool_thread(
    tmp_path: Path, monkeypatch
) -> None:
    """The pool starts its threads when it is made: a Ctrl-C (or any error) between that and
    the run's own cleanup (here: while the encoder is made) still ends them, instead of
    leaving idle threads in a long-lived process (a notebook, a server) after every such
    interrupt."""
    import p2p_deploy.pipeline.run as run_mod

    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), random_bgr(32, 32, 0))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_mod, "Encoder", interrupted)
    opts = RunOptions(batch=1, workers=3)
    prepared = prepare(src, tmp_path / "out", opts)
    before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(prepared, NegateRunner(), opts)
    assert _alive_workers(before) == []


def test_ctrl_c_while_the_pool_starts_its_threads_ends_those_started(monkeypatch) -> None:
    """A Ctrl-C landing in ``Thread.start`` (it waits for the new thread) while the pool starts
    its threads: the threads already running end, none is left waiting for tasks."""
    from p2p_deploy.pipeline.stages import Workers

    real_start = threading.Thread.start
    calls = []

    def start(self) -> None:
        real_start(self)  # the thread runs; the interrupt lands as start() returns
        calls.append(self)
        if len(calls) == 2:
            raise KeyboardInterrupt

    before = set(threading.enumerate())
    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(KeyboardInterrupt):
        Workers(3, threading.Event())
    monkeypatch.undo()
    assert len(calls) == 2
    assert _alive_workers(before) == []
