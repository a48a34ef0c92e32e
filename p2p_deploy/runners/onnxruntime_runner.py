"""ONNX Runtime runner: an exported ``model.onnx`` on the TensorRT / CUDA execution providers
where onnxruntime-gpu has them, on the CPU otherwise.

CPU tuning (why each setting): all graph optimisations (fuses Conv+activation, folds the
InstanceNormalization pieces); intra-op threads = physical cores (hyper-threads only contend
for the same FPU); sequential execution (the U-Net is a chain, parallel branches buy nothing);
memory pattern + arena on (fixed shapes per batch size, so buffers are planned once).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

import numpy as np

from p2p_deploy.deps import require
from p2p_deploy.devices import parse_device
from p2p_deploy.errors import EngineMismatch, MissingDependency, P2PError, first_line
from p2p_deploy.models.card import ExportCard
from p2p_deploy.models.layout import card_path
from p2p_deploy.models.opening import ModelFile
from p2p_deploy.models.sanity import TensorSpec, check_io
from p2p_deploy.runners.base import Runner
from p2p_deploy.runners.ort_providers import (
    DEFAULT_TRT_BATCH,
    cuda_provider_options,
    options_lost,
    preload_gpu_libraries,
    provider_load_error,
    trt_profile_options,
    trt_provider_options,
    without_provider,
)

log = logging.getLogger(__name__)

_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
}


def _spec(arg) -> TensorSpec:  # noqa: ANN001 - onnxruntime.NodeArg
    """An ONNX Runtime input/output as the sanity check's TensorSpec."""
    shape = arg.shape
    dims = None if shape is None else tuple(d if isinstance(d, int) else None for d in shape)
    return TensorSpec(arg.name, _ORT_DTYPES.get(arg.type, arg.type), dims)


def _provider_options(session) -> dict[str, dict[str, str]]:
    """The live session's provider options (``{}`` when it cannot say)."""
    try:
        return dict(session.get_provider_options() or {})
    except Exception:  # noqa: BLE001 - an older or stub session: nothing to compare
        return {}


def physical_cores() -> int:
    """Physical CPU cores (logical count when psutil cannot tell)."""
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
    except ImportError:
        n = None
    return int(n or os.cpu_count() or 1)


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX export; its card (``model.onnx.json``) gives size, precision, test norm.

    Args:
        path: ``model.onnx``.
        device: ``cpu`` forces the CPU provider; ``cuda[:N]`` requires the CUDA/TensorRT
            providers; None picks the best available.
        threads: intra-op threads (default: physical cores).
        spinning: let idle ORT threads spin (lower latency, burns CPU the reader/writer threads
            of the pipeline could use; off by default).
        use_trt_provider: try ORT's TensorRT provider before CUDA (when installed).
        trt_batch: (min, opt, max) batch of the TensorRT provider's profile (default: the
            card's ``batch_profile``, else 1, 4, 16); larger batches are split.
    """

    backend = "onnxruntime"

    def __init__(
        self,
        model: ModelFile | str | Path,
        device: str | None = None,
        threads: int | None = None,
        spinning: bool = False,
        use_trt_provider: bool = True,
        trt_batch: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__(model, device or "cpu")
        assert self.model is not None
        if self.model.kind != "onnx":
            raise P2PError(f"{self.path}: a {self.model.kind} model, not an ONNX file.")
        self._device_arg = device
        self.threads = threads or physical_cores()
        self.spinning = spinning
        self.use_trt_provider = use_trt_provider
        self.card: ExportCard | None = self.model.export_card
        if self.card is not None:
            self.image_size = self.card.image_size
            self.test_norm = self.card.test_norm
        self.precision = self.model.precision or "fp32"
        profile = trt_batch or (self.card.batch_profile if self.card else None)
        self.trt_batch: tuple[int, int, int] = tuple(profile or DEFAULT_TRT_BATCH)
        self.provider = "not loaded"
        self.input_name = self.output_name = ""
        self._in_dtype: type = np.float32
        self._requested: list = []
        self._session = None

    def _providers(self, ort) -> list:
        have = ort.get_available_providers()
        dev = self._device_arg
        if dev == "cpu":
            return ["CPUExecutionProvider"]
        wanted = parse_device(dev, allow_auto=False) if dev else None
        index = wanted.cuda_index if wanted else 0
        chosen: list = []
        if self.use_trt_provider and "TensorrtExecutionProvider" in have:
            trt_opts = self._trt_provider_options(index)
            if trt_opts is not None:
                chosen.append(("TensorrtExecutionProvider", trt_opts))
        if "CUDAExecutionProvider" in have:
            chosen.append(("CUDAExecutionProvider", cuda_provider_options(index)))
        if wanted and wanted.is_cuda and not chosen:
            raise MissingDependency(
                f"device {dev} requested but onnxruntime has no CUDA provider (it has "
                f"{', '.join(have)}): {provider_load_error(ort, 'CUDAExecutionProvider')}."
            )
        return [*chosen, "CPUExecutionProvider"]

    def trt_cache_dir(self) -> Path:
        """Where ORT's TensorRT provider keeps its engines and timing cache:
        ``<model>.ort-trt-cache/``."""
        return self.path.with_name(self.path.name + ".ort-trt-cache")

    def _trt_provider_options(self, index: int) -> dict | None:
        """The TensorRT provider's options (:func:`trt_provider_options`), or None (the CUDA
        provider is used instead of one that would rebuild its engine on every run) when the
        cache folder cannot be made (read-only model folder) or, without a card, the input
        name and size for the profile shapes are not known."""
        if self.card is None:
            log.warning("%s: no card for the TensorRT provider's profile; using CUDA", self.path)
            return None
        cache = self.trt_cache_dir()
        try:
            cache.mkdir(exist_ok=True)
        except OSError as exc:
            log.warning(
                "%s: no TensorRT engine cache (%s); using the CUDA provider",
                cache,
                exc.strerror or exc,
            )
            return None
        card = self.card
        spatial = card.spatial_profile.sizes() if card.spatial_profile else None
        profile = trt_profile_options(
            card.input_name, card.generator.in_channels, card.image_size, self.trt_batch, spatial
        )
        return trt_provider_options(index, self.precision == "fp16", cache, profile)

    def _activate(self) -> None:
        ort = require("onnxruntime")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.enable_mem_pattern = True
        so.enable_cpu_mem_arena = True
        so.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if self.spinning else "0"
        )
        so.log_severity_level = 3  # ORT's warnings (e.g. unused initializers) are not the user's
        providers = self._providers(ort)  # its P2PError is already one sentence: not wrapped
        self._requested = providers
        names = [p if isinstance(p, str) else p[0] for p in providers]
        if names != ["CPUExecutionProvider"]:
            preload_gpu_libraries(ort, tensorrt="TensorrtExecutionProvider" in names)
        self._session = self._create_session(ort, so, providers)
        # The one model sanity check, on the session's own view of the graph.
        io = check_io(
            self.path,
            [_spec(i) for i in self._session.get_inputs()],
            [_spec(o) for o in self._session.get_outputs()],
            self.card.image_size if self.card is not None else None,
        )
        self.input_name, self.output_name = io.input.name, io.output.name
        self._in_dtype = np.dtype(io.input.dtype).type
        self.image_size = io.image_size
        if io.input.shape[2] is None or io.input.shape[3] is None:
            # Dynamic height and width: the sizes of the card's spatial profile (a card is
            # there: check_io refuses a dynamic size without one).
            assert self.card is not None
            self.sizes = self.card.size_range()
        # A static batch axis fixes each call's size (pad up to it); a symbolic one takes any N.
        if io.static_batch is not None:
            self.min_batch = self.max_batch = io.static_batch
        providers = self._session.get_providers()
        self._check_fallback(
            ort,
            requested=[p if isinstance(p, str) else p[0] for p in self._requested],
            active=providers,
        )
        self.provider = providers[0]
        if self.provider == "TensorrtExecutionProvider":  # its profile bounds each call
            self._limit_to_trt_profile()
        if self.tf32_convolutions():
            log.warning("%s: %s", self.path, self._describe_extras()[-1])
        self.device = (
            "cpu" if self.provider == "CPUExecutionProvider" else (self._device_arg or "cuda:0")
        )
        if self.card is None:  # said once the model loaded: a refusal stays one line
            log.warning(
                "%s: no card %s; sizes taken from the graph", self.path, card_path(self.path).name
            )
        log.debug("onnxruntime runner: %s via %s", self.describe(), ", ".join(providers))

    def _create_session(self, ort, so, providers: list):
        """The InferenceSession, without ONNX Runtime's own provider fallback.

        ONNX Runtime's fallback (onnxruntime_inference_collection.py) retries a session whose
        TensorRT provider failed with ``["CUDAExecutionProvider", "CPUExecutionProvider"]``
        and *no provider options*: the CUDA provider then runs on device 0 with TF32 on,
        whatever was asked. And a provider failing inside ``run()`` silently switches the
        session to the CPU. So fallback is off (``enable_fallback=0``, and
        ``disable_fallback()`` for ``run()``); a TensorRT provider that fails is retried here
        without it, keeping the CUDA provider's options.

        ``enable_fallback=0`` is read by onnxruntime 1.23 and newer only (the ``gpu`` extra's
        floor); an older one still falls back, printing "EP Error" on stdout. So that banner
        is looked for and the session's own provider options are read back
        (:func:`options_lost`): either shows the fallback (1.19-1.21 come up on the CUDA
        provider with its defaults, 1.22 on the CPU alone), and the session is made again
        here.
        """

        def create(provs: list):
            # From the bytes open_model read: the file is read once. ORT < 1.23 prints its
            # fallback on stdout: kept for the warning below, not the user's terminal.
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                session = ort.InferenceSession(
                    self.model.data, sess_options=so, providers=provs, enable_fallback=0
                )
            if hasattr(session, "disable_fallback"):
                session.disable_fallback()
            return session, printed.getvalue()

        def retry_without_trt(reason: str):
            log.warning(
                "%s: ONNX Runtime's TensorRT provider failed (%s); trying without it",
                self.path,
                reason,
            )
            self._requested = rest  # dropped on purpose: no second warning
            return create(rest)[0]

        rest = without_provider(providers, "TensorrtExecutionProvider")
        try:
            try:
                session, printed = create(providers)
            except Exception as exc:  # noqa: BLE001 - ORT raises its own exception classes
                if rest == providers:
                    raise
                return retry_without_trt(first_line(exc, 240))
            lost = options_lost(providers, _provider_options(session))
            said = [ln for ln in printed.splitlines() if ln.startswith("EP Error ")]
            if (lost or said) and rest != providers:
                why = said[0][len("EP Error ") :].split(" when using ")[0][:200] if said else "?"
                # 1.19-1.21 fall back to the CUDA provider with its defaults (lost shows it);
                # 1.22 to the CPU alone (its NvTensorRTRTX check overwrites the CUDA fallback):
                # only the printed banner says so.
                fell = f"its defaults ({', '.join(lost)})" if lost else "other providers"
                return retry_without_trt(
                    f"{why}; onnxruntime {getattr(ort, '__version__', '?')} then fell back to "
                    f"{fell}: onnxruntime-gpu 1.23+ does not"
                )
            return session
        except Exception as exc:  # noqa: BLE001
            raise EngineMismatch(
                f"{self.path}: ONNX Runtime cannot load this model ({first_line(exc, 240)})."
            ) from None

    def _limit_to_trt_profile(self) -> None:
        """The TensorRT provider's engine takes batches within its profile only: larger ones
        are split, smaller ones padded up to its minimum (the base class does both)."""
        lo, _opt, hi = self.trt_batch
        self.max_batch = min(self.max_batch or hi, hi)
        self.min_batch = min(max(self.min_batch, lo), self.max_batch)

    def _check_fallback(self, ort, requested: list[str], active: list[str]) -> None:
        """ONNX Runtime silently drops a GPU provider that fails to start and runs on the CPU.
        With ``--device cuda`` that is an error naming what is missing; with the default
        device a warning."""
        dropped = [p for p in requested if p != "CPUExecutionProvider" and p not in active]
        gpu_active = any(p != "CPUExecutionProvider" for p in active)
        if not dropped:
            return
        reasons = "; ".join(f"{p}: {provider_load_error(ort, p)}" for p in dropped)
        if self._device_arg and not gpu_active:
            raise MissingDependency(
                f"{self.path}: device {self._device_arg} requested but ONNX Runtime could not "
                f"start its GPU provider ({reasons})."
            )
        log.warning("%s: ONNX Runtime dropped %s (%s)", self.path, ", ".join(dropped), reasons)

    def _close(self) -> None:
        self._session = None

    def _infer_chunk(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=self._in_dtype)
        return self._session.run([self.output_name], {self.input_name: x})[0]

    def tf32_convolutions(self) -> bool:
        """True when an fp32 model runs on the TensorRT provider with TF32 allowed: TensorRT
        builds with ``BuilderFlag.TF32`` on by default and ONNX Runtime's TensorRT provider
        has no option to clear it (the CUDA provider's ``use_tf32`` has no TensorRT twin:
        microsoft/onnxruntime#26029, open); only ``NVIDIA_TF32_OVERRIDE=0`` in the
        environment turns it off, process-wide. Said in :meth:`describe`, not hidden."""
        return (
            self.provider == "TensorrtExecutionProvider"
            and self.precision == "fp32"
            and os.environ.get("NVIDIA_TF32_OVERRIDE") != "0"
        )

    def _describe_extras(self) -> list[str]:
        extras = [self.provider, *super()._describe_extras()]
        if self.tf32_convolutions():
            extras.append("TF32 convolutions: set NVIDIA_TF32_OVERRIDE=0 for fp32")
        return extras
