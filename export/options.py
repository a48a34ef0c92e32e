"""``ExportOptions``: everything ``p2p export`` takes, one frozen object (torch-free module, so
``p2p export --help`` builds its flags from these fields without importing torch or onnx)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from p2p_deploy.errors import P2PError, UsageError
from p2p_deploy.models.card import TEST_NORMS
from p2p_deploy.models.spatial import SpatialProfile
from p2p_deploy.options import option, plain_name, validate

IO_CHOICES = {"fp32": "float32", "fp16": "float16"}


@dataclass(frozen=True)
class ExportOptions:
    """One export: the checkpoint, where to write, which models and how to build them."""

    checkpoint: Path = option(
        argument=True,
        metavar="CHECKPOINT",
        help="Run folder, .safetensors (+ .json), or canonical latest_net_G.pth.",
    )
    out: Path = option(Path("export_out"), short="-o", help="Output folder.")
    overwrite: bool = option(
        False,
        negative=False,
        help="Replace an export of another checkpoint (or with other options) in --out: its"
        " models are removed, so the folder never mixes two exports.",
    )
    fp16: bool = option(
        False, negative=False, help="Also write model_fp16.onnx and the FP16 TensorRT engine."
    )
    io: str = option("fp32", help="I/O dtype of the fp16 model: fp32 (Casts in the graph) or fp16.")
    opset: int = option(17, help="ONNX opset (17 or newer).")
    batch: str = option(
        "1:4:16", help="TensorRT batch profile MIN:OPT:MAX (max = Triton max_batch_size)."
    )
    spatial: str | None = option(
        None,
        metavar="MIN:OPT:MAX",
        help="Export for any frame size: dynamic height and width, each of MIN, OPT, MAX HxW"
        " or S for a square, multiples of the stride 2^downsamplings (e.g."
        " 256:768x1280:1280x2048). Every ONNX is parity-checked at MIN, OPT and MAX too;"
        " TensorRT plans get an optimisation profile over H and W (OPT is what TensorRT tunes"
        " for; buffers are sized for the MAX batch at MAX size); the INT8 model is calibrated"
        " at OPT and gated at MIN, OPT and MAX; the card records it. `p2p run --resize native`"
        " tiles frames beyond MAX.",
        shown="a fixed square of the checkpoint's image size",
    )
    test_norm: str | None = option(
        None,
        help="stats: per-image statistics, the paper's test-time behaviour (default for batch"
        " norm); running: eval-mode running averages.",
    )
    engine: bool | None = option(
        None,
        help="--engine: the FP16 engine is required (implies --fp16; error without TensorRT)."
        " --no-engine: skip engines silently. Default: build it with --fp16 when TensorRT is"
        " installed.",
    )
    fp32_engine: bool = option(
        False, negative=False, help="Also build model_fp32.plan (requires TensorRT)."
    )
    workspace: float = option(4.0, max=1024, help="TensorRT workspace limit in GiB.")
    timing_cache: Path | None = option(
        None, help="TensorRT timing cache file: read if present, updated after each build."
    )
    version_compatible: bool = option(
        False,
        negative=False,
        help="Build a version-compatible engine (runs on later TensorRT versions).",
    )
    hardware_compatible: bool = option(
        False, negative=False, help="Build for all Ampere and newer GPUs (AMPERE_PLUS)."
    )
    triton: Path | None = option(
        None,
        help="Also write a Triton model repository here (DIR/p2p_generator/config.pbtxt,"
        " 1/model.plan or 1/model.onnx).",
    )
    triton_name: str = option(
        "p2p_generator",
        check=plain_name,
        help="Model name in the Triton repository (one folder name: letters, digits, _ - .).",
    )
    skip_parity: bool = option(False, negative=False, help="Skip the ONNX Runtime parity checks.")
    int8: bool = option(
        False,
        negative=False,
        help="Also write model_int8.onnx (QDQ, quality-gated; see above; implied by --calib).",
    )
    calib: Path | None = option(
        None,
        help="INT8 calibration images (a folder); default: the checkpoint's own kind of data"
        " (synthetic facades for a synthetic run). The last images (up to 8, at most a fifth)"
        " are held out for the quality gate.",
    )
    calib_count: int = option(32, max=100_000, help="How many images INT8 calibration uses.")

    def __post_init__(self) -> None:
        if self.io not in IO_CHOICES:
            raise UsageError(f"--io {self.io!r}: use fp32 or fp16.")
        if self.test_norm is not None and self.test_norm not in TEST_NORMS:
            raise UsageError(f"--test-norm {self.test_norm!r}: use stats or running.")
        if not self.workspace > 0:
            raise UsageError(f"--workspace {self.workspace}: must be a positive number of GiB.")
        if self.calib_count < 1:
            raise UsageError(f"--calib-count must be at least 1, got {self.calib_count}.")
        validate(self)  # finite numbers, ranges, the Triton name: one line, exit 64
        if self.io == "fp16" and not self.with_fp16:
            raise UsageError("--io fp16 needs --fp16 (the fp32 model has float32 input/output).")
        if self.spatial is not None:
            self.spatial_profile()  # its syntax now; the stride once the checkpoint is read

    def spatial_profile(self) -> SpatialProfile | None:
        """``--spatial`` parsed (None without it).

        Raises:
            UsageError: not MIN:OPT:MAX of HxW or S sizes with MIN <= OPT <= MAX.
        """
        if self.spatial is None:
            return None
        try:
            return SpatialProfile.parse(self.spatial)
        except P2PError as exc:
            raise UsageError(str(exc)) from None

    @property
    def with_fp16(self) -> bool:
        """The fp16 ONNX is exported: ``--fp16``, or ``--engine`` (the FP16 engine needs it)."""
        return self.fp16 or bool(self.engine)

    @property
    def with_int8(self) -> bool:
        """``model_int8.onnx`` is exported: ``--int8``, or ``--calib`` given."""
        return self.int8 or self.calib is not None

    @property
    def precisions(self) -> list[str]:
        """The ONNX models written, in order: ``fp32`` always, then ``fp16``."""
        return ["fp32"] + (["fp16"] if self.with_fp16 else [])
