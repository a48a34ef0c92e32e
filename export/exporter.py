"""``Exporter``: the one exporter behind ``p2p export``, one method per format.

checkpoint -> ONNX fp32 (+ fp16), parity-checked -> INT8 ONNX (calibrated, quality-gated) ->
TensorRT plans (fp16, fp32, int8) -> Triton repository. Each format has one method
(:meth:`Exporter.export_onnx`, :meth:`~Exporter.export_int8`, :meth:`~Exporter.export_engine`,
:meth:`~Exporter.export_triton`) that makes its files and returns what it made (:class:`Made`);
every one runs through one wrapper, :meth:`Exporter._try_export`, which says the step, times
it, moves what it staged under the final names, records what it made and applies the one skip
policy for engines TensorRT cannot build here.

Models are made in a staging folder inside ``--out`` and moved under their final names only
after their checks passed (plans: by ``build_engine``, the same way), so a failed export never
leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from p2p_deploy.atomic import StagedFiles, check_writable_dir
from p2p_deploy.deps import available
from p2p_deploy.errors import MissingDependency, P2PError, UsageError
from p2p_deploy.export.int8_export import (
    INT8_ONNX,
    Int8Options,
    Int8Result,
    calibration_set,
    check_options,
    stage_int8,
)
from p2p_deploy.export.options import IO_CHOICES, ExportOptions
from p2p_deploy.export.tensorrt_build import (
    INSTALL_HINT,
    NoCudaBuffers,
    NoTensorRTGpu,
    check_can_verify_engines,
    parse_batch_profile,
    plan_name,
    skipped_message,
)
from p2p_deploy.models.card import read_export_card
from p2p_deploy.models.layout import card_path

if TYPE_CHECKING:
    from p2p_deploy.export.calibration import SyntheticProvider
    from p2p_deploy.export.parity import ParityReport
    from p2p_deploy.models.generator import UNetGenerator
    from p2p_deploy.models.opening import ModelFile

log = logging.getLogger(__name__)

ONNX_NAMES = {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "int8": INT8_ONNX}
# Every model an export writes, whatever the precision: model.onnx, model_fp16.plan, ...
MODEL_FILE = re.compile(r"model(_\w+)?\.(onnx|plan|engine)")
# Why TensorRT cannot build a plan here: tensorrt or polygraphy missing, or no usable CUDA GPU.
UNAVAILABLE = (MissingDependency, NoTensorRTGpu)


@dataclass(frozen=True)
class Made:
    """What one export step made.

    Attributes:
        staged: models in the staging folder, each with its card; the wrapper moves them
            under their final names once the step returned (its checks passed).
        models: models under their final names (plans: ``build_engine`` moves its own in).
        parity: the ONNX parity reports.
        int8: the INT8 step's gate figure and calibration.
        triton: the Triton ``config.pbtxt`` written.
    """

    staged: tuple[Path, ...] = ()
    models: tuple[Path, ...] = ()
    parity: tuple[ParityReport, ...] = ()
    int8: Int8Result | None = None
    triton: Path | None = None


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and found.

    Attributes:
        files: every model and card written under ``out`` (then the Triton config).
        models: model files only (``model.onnx``, ``model_fp16.onnx``, ``model_fp16.plan``...).
        parity: one report per ONNX checked (empty with ``skip_parity``).
        notes: sentences for the user (e.g. the engine was skipped and how to install TensorRT).
        seconds: wall time per step run (``load``, ``onnx``, ``int8``, ``engine_fp16``, ...).
        int8: the INT8 step's gate figure and calibration (``--int8``), else None.
        triton: the Triton ``config.pbtxt`` (``--triton``), else None.
    """

    files: tuple[Path, ...] = ()
    models: tuple[Path, ...] = ()
    parity: tuple[ParityReport, ...] = ()
    notes: tuple[str, ...] = ()
    seconds: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    int8: Int8Result | None = None
    triton: Path | None = None


def existing_export(out_dir: Path) -> list[Path]:
    """The model files of an earlier export in ``out_dir`` (``model*.onnx``, ``model*.plan``,
    whatever the precision) and their cards."""
    if not out_dir.is_dir():
        return []
    models = [p for p in out_dir.iterdir() if p.is_file() and MODEL_FILE.fullmatch(p.name)]
    return sorted({*models, *(card_path(p) for p in models if card_path(p).exists())})


def _other_checkpoints(models: list[Path], sha: str) -> list[Path]:
    """The models among ``models`` not exported from the checkpoint whose sha256 is ``sha``
    (a model without a readable card counts as another's)."""
    others = []
    for model in models:
        try:
            same = read_export_card(model).checkpoint_sha256 == sha
        except P2PError:
            same = False
        if not same:
            others.append(model)
    return others


def _cannot_build(exc: P2PError) -> str:
    """Why TensorRT cannot build here, for a sentence: ``tensorrt is not installed here``,
    ``TensorRT found no usable CUDA GPU (...)``, or (no CUDA buffers for the parity run) the
    whole reason with its own hint."""
    if isinstance(exc, NoCudaBuffers):
        return str(exc).rstrip(".")
    if isinstance(exc, MissingDependency):  # "tensorrt is not installed (...): pip install ..."
        return f"{str(exc).split(' (')[0]} here"
    return str(exc)


def _asked_for(plan: str, reason: str, exc: P2PError | None = None) -> str:
    """The one line when a plan that was asked for cannot be built here (with the [gpu] extra
    as the fix, unless the reason carries its own: no CUDA buffers)."""
    if isinstance(exc, NoCudaBuffers):
        return f"{plan} was asked for, but {reason}."
    return f"{plan} was asked for, but {reason}: {INSTALL_HINT}."


def _skip_note(exc: P2PError) -> str:
    """The one note when the optional plans cannot be built here."""
    if isinstance(exc, NoCudaBuffers):
        return f"TensorRT engine skipped: {_cannot_build(exc)}."
    return skipped_message(_cannot_build(exc))


class Exporter:
    """One export, as ``opts`` says: ``Exporter(opts, on_step, synthetic).run()``.

    Writes into ``opts.out``: ``model.onnx`` (always), ``model_fp16.onnx`` and
    ``model_fp16.plan`` (with ``fp16``), ``model_fp32.plan`` (with ``fp32_engine``),
    ``model_int8.onnx`` and ``model_int8.plan`` (with ``int8``), each with its card
    ``<name>.json``; with ``triton`` a Triton repository. ``on_step`` is called with a short
    description before each step; ``synthetic`` draws INT8 calibration images for a synthetic
    run (the CLI passes train's generator: export may not import train).

    The flags are checked when the exporter is made (nothing read or written yet). An earlier
    export in ``out`` of another checkpoint is refused unless ``opts.overwrite``; the earlier
    export's models (all of them) are removed just before the new ones are moved in, so the
    folder never holds models of two exports.

    Raises:
        P2PError (UsageError, CheckpointError, MissingDependency, ...): a one-line reason.
    """

    # Set by run() and its steps (_no_tensorrt: why TensorRT cannot build here, once known).
    checkpoint: ModelFile
    generator: UNetGenerator
    _stage: StagedFiles
    _made: list[Made]
    _seconds: dict[str, float]
    _notes: list[str]
    _no_tensorrt: P2PError | None

    def __init__(
        self,
        opts: ExportOptions,
        on_step: Callable[[str], None] | None = None,
        synthetic: SyntheticProvider | None = None,
    ) -> None:
        from p2p_deploy.export.onnx_export import check_opset

        self.opts = opts
        self.out = Path(opts.out)
        self.step = on_step or (lambda _msg: None)
        self.int8: Int8Options | None = None
        try:  # before out is created: a bad flag leaves nothing behind
            self.profile = parse_batch_profile(opts.batch)
            check_opset(opts.opset)
            if opts.with_int8:
                self.int8 = Int8Options(
                    calib_dir=opts.calib, calib_count=opts.calib_count, synthetic=synthetic
                )
                check_options(self.int8)
        except P2PError as exc:
            raise UsageError(str(exc)) from None
        self.spatial = opts.spatial_profile()  # its syntax (UsageError); the stride in load()
        self.engines = self._plans_wanted()
        asked = [prec for prec, required in self.engines if required]
        missing = [m for m in ("tensorrt", "polygraphy") if asked and not available(m)]
        if missing:
            # Asked for explicitly: fail before spending minutes on exports that were not the point.
            verb = "is" if len(missing) == 1 else "are"
            reason = f"{' and '.join(missing)} {verb} not installed here"
            raise MissingDependency(_asked_for(plan_name(asked[0]), reason))
        # A machine where a built engine could not be checked (CPU torch, no pycuda) is said
        # now, before the ONNX exports and minutes of building.
        self._precheck: P2PError | None = None
        if self.engines and available("tensorrt"):
            try:
                check_can_verify_engines()
            except NoCudaBuffers as exc:
                if asked:
                    raise NoCudaBuffers(
                        _asked_for(plan_name(asked[0]), _cannot_build(exc), exc)
                    ) from None
                self._precheck = exc
        self._build = {  # build_engine's options: every plan (fp16, fp32, int8) is built alike
            "profile": self.profile,
            "workspace_gib": opts.workspace,
            "timing_cache": opts.timing_cache,
            "version_compatible": opts.version_compatible,
            "hardware_compatible": opts.hardware_compatible,
        }

    def _plans_wanted(self) -> list[tuple[str, bool]]:
        """The plans to build, in order, each with whether it was asked for (``--engine``,
        ``--fp32-engine``: required) or is built where TensorRT can (optional)."""
        opts = self.opts
        wanted = []
        if opts.with_fp16 and opts.engine is not False:
            wanted.append(("fp16", bool(opts.engine)))
        if opts.fp32_engine:
            wanted.append(("fp32", True))
        if opts.with_int8 and opts.engine is not False:
            wanted.append(("int8", False))
        return wanted

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> ExportResult:
        """Export every format asked for, holding ``--out`` (and the Triton model folder) so
        that a second export into them refuses, naming this one; returns what was written."""
        from p2p_deploy.locking import FolderLock

        check_writable_dir(self.opts.out, "--out")  # a clear line before the lock file
        if self.opts.triton is not None:
            check_writable_dir(self.opts.triton, "--triton")
        with contextlib.ExitStack() as held:
            held.enter_context(FolderLock(self.out, "p2p export", "--out"))
            if self.opts.triton is not None:
                from p2p_deploy.export.triton import model_folder

                folder = model_folder(self.opts.triton, self.opts.triton_name)
                held.enter_context(FolderLock(folder, "p2p export", "--triton"))
            return self._run()

    def _run(self) -> ExportResult:
        self._made, self._seconds, self._notes, self._no_tensorrt = [], {}, [], None
        if self._precheck is not None:  # the optional plans cannot be checked here: one note
            self._no_tensorrt = self._precheck
            self._notes.append(_skip_note(self._precheck))
        self._try_export("load", "loading checkpoint", self.load)
        with StagedFiles(self.out, stem="p2p-export") as self._stage:
            self._try_export("onnx", "exporting ONNX", self.export_onnx)
            if self.int8 is not None:
                self._try_export("int8", f"exporting {ONNX_NAMES['int8']}", self.export_int8)
        for prec, required in self.engines:
            plan = plan_name(prec)
            self._try_export(
                f"engine_{prec}",
                f"building TensorRT engine {plan}",
                self.export_engine,
                prec,
                engine=plan,
                required=required,
            )
        if self.opts.triton is not None:
            best = self._triton_model()
            self._try_export(
                "triton", f"writing Triton repository for {best.name}", self.export_triton, best
            )
        return self._result()

    def _result(self) -> ExportResult:
        """The run's record, folded from what each step made, in the order made."""
        made = self._made
        return ExportResult(
            files=(
                *(f for m in made for model in m.models for f in (model, card_path(model))),
                *(m.triton for m in made if m.triton is not None),
            ),
            models=tuple(model for m in made for model in m.models),
            parity=tuple(r for m in made for r in m.parity),
            notes=tuple(self._notes),
            seconds=MappingProxyType(dict(self._seconds)),
            int8=next((m.int8 for m in made if m.int8 is not None), None),
            triton=next((m.triton for m in made if m.triton is not None), None),
        )

    def _try_export(
        self,
        key: str,
        message: str,
        method: Callable[..., Made],
        *args: Any,
        engine: str | None = None,
        required: bool = True,
    ) -> None:
        """Run one step: say ``message``, run ``method(*args)``, record its wall time as
        ``seconds[key]``, move the models it staged under their final names and record what
        it made.

        ``engine``: the plan the step builds. When TensorRT cannot build here (tensorrt or
        polygraphy missing, no usable CUDA GPU), a ``required`` plan fails the export in one
        line naming it; an optional one is skipped with one note, recorded once: the answer is
        kept, later plans are not tried again. Any other failure propagates as it is (a
        one-line P2PError), and nothing the step staged is moved in.
        """
        if engine is not None and self._no_tensorrt is not None:
            self._without_tensorrt(engine, required)  # known already: not tried again
            return
        self.step(message)
        start = time.perf_counter()
        try:
            made = method(*args)
        except UNAVAILABLE as exc:
            if engine is None:
                raise
            self._no_tensorrt = exc
            if not required:  # the one note, whatever number of plans it skips
                self._notes.append(_skip_note(exc))
            self._without_tensorrt(engine, required)
            return
        self._seconds[key] = time.perf_counter() - start
        self._made.append(self._promote(made))

    def _without_tensorrt(self, plan: str, required: bool) -> None:
        """``plan`` cannot be built here (``_no_tensorrt`` says why): one line naming it when
        it was asked for, else it is skipped (the note was made when TensorRT failed first)."""
        assert self._no_tensorrt is not None
        reason = _cannot_build(self._no_tensorrt)
        if required:
            raise type(self._no_tensorrt)(_asked_for(plan, reason, self._no_tensorrt)) from None
        log.debug("%s skipped: %s", plan, reason)

    def _promote(self, made: Made) -> Made:
        """Move ``made``'s staged models (card first: a reader that finds a model finds its
        card) under their final names; the earlier export's models, every one this run did not
        write, go just before: the folder never mixes two exports. Returns ``made`` with the
        final paths."""
        if not made.staged:
            return made
        ours = {f for m in self._made for model in m.models for f in (model, card_path(model))}
        for old in existing_export(self.out):
            if old not in ours:
                old.unlink()
        finals = tuple(self._stage.promote(card_path(p), p)[1] for p in made.staged)
        return dataclasses.replace(made, staged=(), models=made.models + finals)

    # --- one method per step ------------------------------------------------------------------

    def load(self) -> Made:
        """Read (and hash) the checkpoint once, then check every output before touching any:
        a bad checkpoint or output writes nothing."""
        from p2p_deploy.models.opening import open_model

        checkpoint = open_model(self.opts.checkpoint)
        if not checkpoint.is_checkpoint:
            raise UsageError(
                f"{self.opts.checkpoint}: an exported {checkpoint.kind} model; p2p export reads "
                "a checkpoint (run folder, .safetensors, latest_net_G.pth)."
            )
        assert checkpoint.card is not None
        if self.spatial is not None:
            try:
                self.spatial.check(checkpoint.card.generator.stride)
            except P2PError as exc:
                raise UsageError(str(exc)) from None
        self.check_outputs(checkpoint.card.checkpoint_sha256 or "")
        if self.int8 is not None:
            # The calibration images are there (or the card says where they come from)
            # before model.onnx is written.
            from p2p_deploy.export.calibration import check_calibration_source

            check_calibration_source(
                checkpoint.path, self.int8.calib_dir, self.int8.calib_count, self.int8.synthetic
            )
        self.checkpoint = checkpoint
        self.generator = checkpoint.generator()
        return Made()

    def check_outputs(self, sha: str) -> None:
        """Every output is checked before any work: --out, --triton, and an earlier export of
        another checkpoint (``sha``: this checkpoint's sha256)."""
        opts = self.opts
        check_writable_dir(opts.out, "--out")
        if opts.triton is not None:
            from p2p_deploy.export.triton import check_triton_target

            check_writable_dir(opts.triton, "--triton")
            # Another checkpoint's Triton model, or a hand-edited config.pbtxt, is replaced
            # only with --overwrite (compared with this checkpoint's sha256, read once above).
            check_triton_target(opts.triton, opts.triton_name, sha or None, opts.overwrite)
        old = [p for p in existing_export(self.out) if p.suffix != ".json"]
        others = _other_checkpoints(old, sha)
        if others and not opts.overwrite:
            raise UsageError(
                f"{opts.out}: holds an export of another checkpoint "
                f"({', '.join(p.name for p in others)}); give --overwrite to replace that whole "
                "set, or choose another --out (one folder never mixes the models of two exports)."
            )

    def export_onnx(self) -> Made:
        """``model.onnx`` (+ ``model_fp16.onnx``), staged, each parity-checked in ONNX Runtime
        against eager torch in the same test-norm mode (unless ``skip_parity``), the figures in
        its card: all are checked before any is moved in."""
        import torch

        from p2p_deploy.export.onnx_export import export_onnx
        from p2p_deploy.export.parity import check_onnx_parity
        from p2p_deploy.models.inference import prepare_generator

        opts = self.opts
        staged, reports = [], []
        reference = None  # the eager fp32 module in the exports' test-norm mode, built once
        for prec in opts.precisions:
            path = self._stage.path / ONNX_NAMES[prec]
            self.step(f"exporting {path.name}")
            card = export_onnx(
                self.generator,
                path,
                precision=prec,
                test_norm=opts.test_norm,
                opset=opts.opset,
                io_dtype=IO_CHOICES[opts.io] if prec == "fp16" else "float32",
                card=self.checkpoint.card,
                spatial=self.spatial,
            )
            staged.append(path)
            if opts.skip_parity:
                continue
            self.step(f"parity check of {path.name}")
            if reference is None:
                with torch.inference_mode():
                    reference = prepare_generator(self.generator, card.test_norm)
            # Raises naming the model and the figure when it fails; nothing is moved in.
            report = check_onnx_parity(path, reference)
            report.model = str(self.out / path.name)
            reports.append(report)
            dataclasses.replace(card, extra={**card.extra, "parity": report.to_dict()}).write(path)
        return Made(staged=tuple(staged), parity=tuple(reports))

    def export_int8(self) -> Made:
        """``model_int8.onnx``, staged: calibrated on ``--calib`` or the checkpoint's own kind of
        data, quantized from ``model.onnx``, graph-checked and quality-gated
        (export/int8_export.py); a failed gate raises and leaves no ``model_int8.onnx``."""
        assert self.int8 is not None
        calib = calibration_set(
            self.int8, self.checkpoint.path, self.checkpoint.card, self.spatial
        )
        fp32 = self.out / ONNX_NAMES["fp32"]
        q = stage_int8(fp32, self._stage.path, calib, self.int8, self.step)
        return Made(staged=(q.staged,), int8=q)

    def export_engine(self, precision: str) -> Made:
        """``model_<precision>.plan`` from the ONNX of that precision (export/tensorrt_build.py:
        strongly typed build, precision verified, parity against ONNX Runtime on
        ``model.onnx`` (the INT8 plan: on ``model_int8.onnx``) while still staged; moved in
        with its card)."""
        from p2p_deploy.export.int8_engine import build_int8_plan
        from p2p_deploy.export.tensorrt_build import build_engine

        plan = self.out / plan_name(precision)
        fp32 = self.out / ONNX_NAMES["fp32"]
        onnx = self.out / ONNX_NAMES[precision]
        if precision == "int8":
            # An INT8 plan TensorRT rejects (or that fails its checks) is a note: the gated
            # model_int8.onnx stays, for OpenVINO and ONNX Runtime, with the reason in its card.
            # Its parity reference is that graph itself (its quality against fp32 is the
            # graph's gate on held-out images; export/trt_parity.py says why).
            card, note = build_int8_plan(onnx, plan, reference_onnx=onnx, **self._build)
            if note is not None:
                self._notes.append(note)
                return Made()
        else:
            card = build_engine(onnx, plan, reference_onnx=fp32, **self._build)
        log.info("built %s (%s)", plan, card.precision)
        return Made(models=(plan,))

    def _triton_model(self) -> Path:
        """The model Triton serves: the fp16 plan, else the fp32 plan, else the fp16 ONNX, else
        ``model.onnx``."""
        made = {model.name for m in self._made for model in m.models}
        names = (plan_name("fp16"), plan_name("fp32"), ONNX_NAMES["fp16"], ONNX_NAMES["fp32"])
        return next(self.out / name for name in names if name in made)

    def export_triton(self, model: Path) -> Made:
        """A Triton model repository at ``--triton`` serving ``model``, ``max_batch_size`` the
        batch profile's max."""
        from p2p_deploy.export.triton import write_triton_repository

        config = write_triton_repository(
            model,
            self.opts.triton,
            model_name=self.opts.triton_name,
            max_batch_size=self.profile.max,
            preferred_batch_sizes=[self.profile.opt, self.profile.max],
        )
        return Made(triton=config)
