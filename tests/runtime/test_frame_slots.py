"""Double-buffered submission of frames: the slots' bookkeeping on the CPU (host arrays stand
in for pinned memory, a list records the waits), and the GPU paths where a GPU is present."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from p2p_deploy.runners.frame_slots import FrameSlots


def _alloc(allocs: list[int]):
    def alloc(nbytes: int) -> np.ndarray:
        allocs.append(nbytes)
        return np.zeros(max(nbytes, 1), np.uint8)

    return alloc


def test_a_slot_is_reused_only_after_its_output_was_taken() -> None:
    allocs: list[int] = []
    slots = FrameSlots(_alloc(allocs), count=2)
    waited: list[int] = []
    pendings = []
    for k in range(4):
        slot = slots.take()
        out = slot.host_out((2, 3), np.uint8)
        out[:] = k  # "the device wrote batch k here"
        pendings.append(slots.pending(slot, lambda k=k: waited.append(k), out))
    # Batches 0 and 1 were fetched when their slots were taken again (for 2 and 3), in order,
    # and kept their own values although the slots were overwritten since.
    assert waited == [0, 1]
    assert [int(p.result()[0, 0]) for p in pendings] == [0, 1, 2, 3]
    assert waited == [0, 1, 2, 3]  # each waited for once


def test_slots_grow_for_larger_batches_and_view_any_shape() -> None:
    allocs: list[int] = []
    slots = FrameSlots(_alloc(allocs), count=1)
    slot = slots.take()
    a = slot.host_in((1, 4, 4, 3), np.uint8)
    assert a.shape == (1, 4, 4, 3) and allocs[-1] == 48
    b = slot.host_in((2, 3, 4, 4), np.float32)  # larger: a new buffer
    assert b.shape == (2, 3, 4, 4) and b.dtype == np.float32 and allocs[-1] == 384
    n = len(allocs)
    slot.host_in((1, 4, 4, 3), np.uint8)  # smaller: the same buffer
    assert len(allocs) == n


def test_pycuda_memory_pushes_its_context_for_slots_on_any_thread(monkeypatch) -> None:
    """pycuda allocations and events raise without a current context; the slots grow their
    pinned buffers (and the runner waits on events) outside any ``with mem.current()``, on the
    thread that submits: the pycuda memory layer pushes its context in each call."""
    import threading

    from runtime import fake_pycuda

    fake_pycuda.install(monkeypatch)
    from p2p_deploy.runners.trt_memory import PycudaMemory

    mem = PycudaMemory()
    assert not fake_pycuda._stack()  # nothing left pushed on this thread
    results: list = []

    def submit() -> None:
        slots = FrameSlots(lambda nbytes: mem.host_empty((max(nbytes, 1),), np.uint8))
        dev = mem.device_empty(2 * 3 * 4 * 4 * 4)
        pending = []
        for k in range(3):
            x = np.full((2, 3, 4, 4), k, np.float32)
            slot = slots.take()
            h_in = slot.host_in(x.shape, np.float32)  # grows: a pagelocked allocation
            h_out = slot.host_out(x.shape, np.float32)
            np.copyto(h_in, x)
            mem.to_device(dev, h_in)
            mem.to_host(h_out, dev)
            event = mem.record_event()
            pending.append(slots.pending(slot, event.synchronize, h_out))
        results.extend(int(p.result()[0, 0, 0, 0]) for p in pending)
        mem.synchronize()
        assert not fake_pycuda._stack()

    worker = threading.Thread(target=submit)
    worker.start()
    worker.join()
    assert results == [0, 1, 2]


def test_warmup_runs_the_runs_batch_within_the_runners_limits() -> None:
    """The warm-up translates the batch size the run will submit (autotuning, graph capture
    and compiling are per shape), clamped to min_batch..max_batch; min_batch by default."""
    from p2p_deploy.runners.base import Pending, Runner

    class Recording(Runner):
        def __init__(self) -> None:
            super().__init__()
            self.image_size, self.is_active, self.batches = 8, True, []

        def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
            return batch

        def _submit_frames_chunk(self, frames: np.ndarray) -> Pending:
            self.batches.append(frames.shape[0])
            return Pending(lambda: frames)

    r = Recording()
    r.warmup(16)
    r.warmup()
    r.min_batch, r.max_batch = 4, 8
    r.warmup(16)
    r.warmup(2)
    r.warmup()
    assert r.batches == [16, 1, 8, 4, 4]


def test_a_smaller_batch_replays_the_smallest_larger_graph() -> None:
    """CUDA-graph keys (tag, batch, *row): a batch without its own graph replays the smallest
    captured larger one of the same tag and row (the run's last, partial batch), else is
    captured itself."""
    from p2p_deploy.runners.torch_runner import captured_key_for

    captured = [("frames", 16, 32, 32, 3), ("frames", 64, 32, 32, 3), ("float", 4, 3, 32, 32)]
    assert captured_key_for(captured, ("frames", 16, 32, 32, 3)) == ("frames", 16, 32, 32, 3)
    assert captured_key_for(captured, ("frames", 12, 32, 32, 3)) == ("frames", 16, 32, 32, 3)
    assert captured_key_for(captured, ("frames", 17, 32, 32, 3)) == ("frames", 64, 32, 32, 3)
    assert captured_key_for(captured, ("frames", 65, 32, 32, 3)) is None
    assert captured_key_for(captured, ("frames", 2, 64, 64, 3)) is None  # another frame size
    assert captured_key_for(captured, ("float", 2, 3, 32, 32)) == ("float", 4, 3, 32, 32)
    assert captured_key_for([], ("float", 2, 3, 32, 32)) is None


@pytest.mark.gpu
def test_graphed_runner_replays_a_partial_batch_on_the_warmed_graph(
    tiny_checkpoint: Path,
) -> None:
    """warmup(batch) captures the run's shape; a later partial batch replays that graph on
    its first rows (no new capture) and gives what the eager runner gives."""
    from p2p_deploy.runners.factory import open_runner

    frames = np.random.default_rng(4).integers(0, 256, (3, 32, 32, 3), np.uint8)
    with open_runner(tiny_checkpoint, "torch", device="cuda") as eager:
        want = eager.infer_frames(frames).astype(int)
    with open_runner(tiny_checkpoint, "torch", device="cuda", cuda_graphs=True) as r:
        r.warmup(4)
        assert list(r._graphs) == [("frames", 4, 32, 32, 3)]
        got = r.infer_frames(frames).astype(int)
        assert list(r._graphs) == [("frames", 4, 32, 32, 3)]
    assert got.shape == frames.shape and np.abs(got - want).max() <= 2


@pytest.mark.gpu
def test_torch_runner_streamed_frames_match_one_at_a_time(tiny_checkpoint: Path) -> None:
    """Five batches submitted back to back (two in flight on the runner's stream, from
    pinned slots) give what each gives alone; with CUDA graphs too."""
    from p2p_deploy.runners.factory import open_runner

    rng = np.random.default_rng(0)
    batches = [rng.integers(0, 256, (n, 32, 32, 3), np.uint8) for n in (3, 3, 2, 3, 1)]
    for graphs in (False, True):
        with open_runner(tiny_checkpoint, "torch", device="cuda", cuda_graphs=graphs) as r:
            assert r.frames_in_flight == 2
            alone = [r.infer_frames(b) for b in batches]
            pending = [r.submit_frames(b) for b in batches]
            for want, p in zip(alone, pending, strict=True):
                np.testing.assert_array_equal(p.result(), want)


@pytest.mark.gpu
@pytest.mark.skipif(importlib.util.find_spec("pycuda") is None, reason="pycuda is not installed")
def test_pycuda_slots_round_trip_with_events() -> None:
    """The pycuda memory layer's pinned slots, async copies and events (the TensorRT runner's
    torch-free path): each batch comes back intact while the next is queued."""
    from p2p_deploy.runners.trt_memory import PycudaMemory

    mem = PycudaMemory()
    slots = FrameSlots(lambda nbytes: mem.host_empty((max(nbytes, 1),), np.uint8))
    dev = mem.device_empty(4 * 3 * 8 * 8 * 4)
    rng = np.random.default_rng(1)
    data = [rng.standard_normal((4, 3, 8, 8)).astype(np.float32) for _ in range(5)]
    pending = []
    for x in data:
        slot = slots.take()
        h_in = slot.host_in(x.shape, np.float32)
        h_out = slot.host_out(x.shape, np.float32)
        np.copyto(h_in, x)
        with mem.current():
            mem.to_device(dev, h_in)
            mem.to_host(h_out, dev)
            event = mem.record_event()

        def wait(event=event) -> None:
            with mem.current():
                event.synchronize()

        pending.append(slots.pending(slot, wait, h_out))
    for x, p in zip(data, pending, strict=True):
        np.testing.assert_array_equal(p.result(), x)
    mem.close()


@pytest.mark.gpu
@pytest.mark.slow
def test_compiled_runner_pads_to_one_shape_and_matches_eager(tiny_checkpoint: Path) -> None:
    """compile + static_batch: every call is padded to one shape (no recompiling for the last
    batch), the warm-up compiles, and the outputs match the eager fp16 runner's."""
    from p2p_deploy.runners.factory import open_runner

    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (5, 32, 32, 3), np.uint8)
    with open_runner(tiny_checkpoint, "torch", device="cuda") as eager:
        want = eager.infer_frames(frames).astype(int)
    with open_runner(tiny_checkpoint, "torch", device="cuda", compile=True, static_batch=4) as r:
        assert (r.min_batch, r.max_batch) == (4, 4)
        assert r.warmup() > 0 and r.compile_seconds is not None
        got = r.infer_frames(frames).astype(int)  # 4 + 1 padded to 4
    assert np.abs(got - want).max() <= 2


@pytest.mark.slow
def test_compiled_cpu_runner_uses_one_shape_and_the_disk_cache(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch
) -> None:
    """On the CPU too: compile + static_batch pads the last batch to the compiled shape, and
    inductor writes its compiled code under the project's cache folder (reused next run)."""
    from p2p_deploy.runners.factory import open_runner
    from p2p_deploy.runners.torch_runner import inductor_cache_dir

    # Set then removed: monkeypatch puts the variable back as it was (the runner sets it).
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "unused")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert inductor_cache_dir() == tmp_path / "cache" / "p2p-deploy" / "inductor"
    frames = np.random.default_rng(3).integers(0, 256, (3, 32, 32, 3), np.uint8)
    with open_runner(tiny_checkpoint, "torch", device="cpu") as eager:
        want = eager.infer_frames(frames).astype(int)
    with open_runner(tiny_checkpoint, "torch", device="cpu", compile=True, static_batch=2) as r:
        r.warmup()
        calls = []
        r._model.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
        got = r.infer_frames(frames).astype(int)
    assert calls == [2, 2]  # 3 frames: 2 + 1 padded to 2
    assert np.abs(got - want).max() <= 1
    assert any((tmp_path / "cache" / "p2p-deploy" / "inductor").rglob("*"))


@pytest.mark.slow
def test_inductor_cache_survives_an_earlier_dynamo_import(tmp_path: Path, monkeypatch) -> None:
    """Importing torch._dynamo (torch.onnx.export(dynamo=True) does, e.g. the bench's export
    before its compile rows) sets $TORCHINDUCTOR_CACHE_DIR to inductor's /tmp default: that is
    not the user's choice, and the project's persistent folder still wins; a folder the user
    set is kept."""
    import subprocess
    import sys

    from p2p_deploy.runners.torch_runner import use_inductor_cache

    code = (
        "import os, torch._dynamo; from p2p_deploy.runners.torch_runner import "
        "use_inductor_cache; before = os.environ['TORCHINDUCTOR_CACHE_DIR']; "
        "use_inductor_cache(); print(before); print(os.environ['TORCHINDUCTOR_CACHE_DIR'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    before, after = res.stdout.split()
    assert "torchinductor_" in before
    assert after == str(tmp_path / "cache" / "p2p-deploy" / "inductor")

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert use_inductor_cache() == tmp_path / "mine"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
