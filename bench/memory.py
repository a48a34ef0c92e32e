"""Peak memory while a backend runs: host RSS sampled in a thread, GPU memory from torch.

Host: the process's resident set size (psutil), sampled every few milliseconds in a daemon
thread; the peak is process-wide, so it includes what earlier rows left allocated (allocators
rarely give memory back): read it as "the process needed at most this much".
GPU: ``torch.cuda.max_memory_allocated`` covers torch runners only; TensorRT and ONNX Runtime
allocate outside torch's caching allocator, so the device-wide used memory
(``torch.cuda.mem_get_info``) is sampled as well and the larger increase is reported. Without
torch (a deploy install) the GPU figure is null.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

import psutil

MB = 1024 * 1024


class PeakMemory:
    """Context manager measuring peak host RSS (and GPU memory on ``cuda`` devices), in MB.

    After exit: :attr:`peak_host_rss_mb` (float) and :attr:`peak_gpu_mem_mb` (float, or None
    when ``device`` is not CUDA or torch has no CUDA).
    """

    def __init__(self, device: str = "cpu", interval_s: float = 0.005) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak_host_rss_mb: float = 0.0
        self.peak_gpu_mem_mb: float | None = None
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._torch: Any = None
        self._gpu_index: int | None = None
        self._gpu_used0 = 0
        self._gpu_used_peak = 0
        self._peak_rss = 0

    def _gpu_used(self) -> int:
        free, total = self._torch.cuda.mem_get_info(self._gpu_index)
        return int(total - free)

    def _sample(self) -> None:
        rss = self._proc.memory_info().rss
        self._peak_rss = max(self._peak_rss, rss)
        if self._gpu_index is not None:
            self._gpu_used_peak = max(self._gpu_used_peak, self._gpu_used())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            try:
                import torch
            except ImportError:  # a deploy install without torch: no GPU figure
                torch = None
            if torch is not None and torch.cuda.is_available():
                self._torch = torch
                self._gpu_index = torch.device(self.device).index or 0
                torch.cuda.reset_peak_memory_stats(self._gpu_index)
                self._gpu_used0 = self._gpu_used()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        self.peak_host_rss_mb = self._peak_rss / MB
        if self._gpu_index is not None:
            torch_peak = self._torch.cuda.max_memory_allocated(self._gpu_index)
            device_delta = max(self._gpu_used_peak - self._gpu_used0, 0)
            self.peak_gpu_mem_mb = max(torch_peak, device_delta) / MB
