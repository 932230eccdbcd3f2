"""Explain a click: CAM maps in slide coordinates, for a chosen class, method and layer.

Two entry points, both Qt-free and meant to run on the viewer's inference worker thread:

* :func:`explain_patch`: the model patch under a level-0 point (the patch of the
  whole-slide grid at the model's spacing, as the engine lays it out);
* :func:`explain_region`: every tissue patch of a level-0 rectangle (tissue rule of
  :mod:`inference.engine.tissue`), on a grid anchored at the rectangle with ``overlap``.

Each patch's raw map (non-negative, never min-max scaled) is resized to the patch's
footprint and blended into one canvas with a Hann window, so the overlap bands between
patches cross-fade smoothly.  The whole canvas then gets ONE normalisation range: ``0`` to
a high percentile (default 99th) of the raw values over every explained pixel, so that
neighbouring patches stay comparable (a weakly activated patch stays dim).  Planning is
:mod:`inference.explain.planning`, blending and the range :mod:`inference.explain.stitching`,
the methods :mod:`inference.explain.runners`; this module runs the steps in order.

Threading: the functions run on the calling thread and block.  ``progress(done, total)``
is called on that thread, first with ``done == 0`` as soon as the total is known, before
any patch is read or the model runs (Score-CAM reads its channel count off the layer's
modules, checks it by running the model up to the layer once on a blank patch, and
reports ``(0, total)`` again if it differed), then after every batch, and with
``done == total`` at the end.  Setting ``cancel`` stops the work between two batches with
:class:`~inference.explain.methods.ExplainCancelled`.  Hooks are registered for the
duration of one call only and are removed whatever happens; the model's parameters are
left as they were.  Do not explain with the same model from two threads at once.

Forms: a loaded model explains through its ``explanation_model()``
(:func:`explanation_model`): an ONNX or TorchScript model whose folder also holds the
eager weights is explained by those, a ``.pt2`` program by its unflattened modules
(hooks work there); an ONNX model alone gets the forward-only methods (occlusion).  A
Vision Transformer's or Swin's layer output reaches the CAM through its reshape
transform (:mod:`inference.explain.reshape`).

torch and pytorch_grad_cam are imported inside functions, so importing this module is free.
"""

from __future__ import annotations

import functools
import platform
import threading
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.core.geometry import Rect
from inference.engine.device import amp_dtype, precision_name
from inference.engine.patches import make_patch_reader, slide_mpp
from inference.engine.tissue import TissueMask
from inference.explain.layers import guess_channels, layer_output_shape, resolve_layer_named
from inference.explain.methods import (
    METHODS,
    ONNX_GRADIENT_REASON,
    ONNX_HOOK_REASON,
    TORCHSCRIPT_REASON,
    ExplainError,
    MethodSpec,
    MethodUnavailableError,
    is_torchscript,
    method_spec,
)
from inference.explain.planning import Plan, plan_patch, plan_region, seg_masks
from inference.explain.progress import BatchLoop, ProgressCallback, ProgressTracker
from inference.explain.requests import CamRequest, CamResult, MethodInfo
from inference.explain.reshape import layer_layout, reshape_for
from inference.explain.runner_base import RunSettings, work_units
from inference.explain.runners import make_runner
from inference.explain.scoring import class_scores, device_of, model_inputs
from inference.explain.stitching import normalisation, stitch
from inference.explain.targets import ClassTarget, SegmentationTarget, Target

if TYPE_CHECKING:
    import torch

    from inference.engine.job import ModelLike
    from inference.slides import SlideSource

#: Regions of at most this many patches keep their model inputs between the two passes.
_KEEP_INPUTS = 64


def preload() -> None:
    """Import torch and pytorch-grad-cam now (about 2 s once per process, most of it
    scikit-learn, which pytorch-grad-cam imports), so that the first click does not wait
    for it.  Call it on the inference worker thread when the viewer starts."""
    from inference.explain.cam_runners import cam_classes

    cam_classes()


# -- what can explain what ---------------------------------------------------------------------


def _model_name(model: ModelLike) -> str:
    return str(getattr(model.card, "name", "model"))


def explanation_model(model: ModelLike) -> ModelLike:
    """The model an explanation runs on: a loaded model's ``explanation_model()`` (its
    folder's eager form for ONNX and TorchScript, a ``.pt2`` unflattened), else itself."""
    pick = getattr(model, "explanation_model", None)
    chosen: ModelLike = pick() if callable(pick) else model
    return chosen


def _kind(model: ModelLike) -> str:
    """``eager``, ``torchscript``, ``pt2`` or ``onnx``: the form that runs."""
    kind = getattr(model, "kind", None)
    if kind is not None:
        return str(kind)
    return "torchscript" if is_torchscript(model.module) else "eager"


def _scripted(model: ModelLike) -> bool:
    return _kind(model) == "torchscript"


def _default_layer(model: ModelLike) -> str | None:
    layer = getattr(model, "cam_target_layer", None)
    if layer is None:
        layer = getattr(model.card, "cam_target_layer", None)
    return str(layer) if layer else None


def _unavailable_reason(spec: MethodSpec, model: ModelLike, layer: str | None) -> str | None:
    if _kind(model) == "onnx":
        if spec.hook_based:
            return f"{spec.label} {ONNX_HOOK_REASON}"
        return f"{spec.label} {ONNX_GRADIENT_REASON}" if spec.uses_gradients else None
    if not spec.hook_based:
        return None
    if _scripted(model):
        return f"{spec.label} {TORCHSCRIPT_REASON}"
    if layer is None and _default_layer(model) is None:
        layers = candidate_layers(model)
        example = f" such as {layers[-1]!r}" if layers else ""
        return (
            f"{spec.label} needs a target layer, and the model card names none "
            f"(slidelens.cam_target_layer); choose a layer{example}"
        )
    return None


def available_methods(model: ModelLike, layer: str | None = None) -> list[MethodInfo]:
    """Every method, in display order, with whether it can explain ``model``.

    Unavailable ones carry a one-sentence ``reason`` for a tooltip: hook-based CAMs on a
    TorchScript model (it accepts no hooks), hook or gradient methods on an ONNX model
    without eager weights beside it, or no target layer known.
    """
    model = explanation_model(model)
    out = []
    for spec in METHODS.values():
        reason = _unavailable_reason(spec, model, layer)
        out.append(
            MethodInfo(
                name=spec.name,
                label=spec.label,
                description=spec.description,
                hook_based=spec.hook_based,
                class_specific=spec.class_specific,
                slow=spec.slow,
                available=reason is None,
                reason=reason,
            )
        )
    return out


def candidate_layers(model: ModelLike) -> list[str]:
    """Layers a CAM can be taken from, for a layer picker: every module holding a
    convolution and every transformer block's ``norm1``, in the model's module order
    (deepest blocks last), the default (``cam_target_layer``) included.  Empty for
    TorchScript and ONNX (no layers to hook)."""
    from torch import nn

    model = explanation_model(model)
    if _kind(model) in ("torchscript", "onnx"):
        return []
    names = [
        name
        for name, sub in model.module.named_modules()
        if name
        and (
            any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in sub.modules())
            or (isinstance(sub, nn.LayerNorm) and name.endswith("norm1"))
        )
    ]
    default = _default_layer(model)
    if default and default not in names:
        names.append(default)
    return names


def resolve_class(model: ModelLike, target: int | str) -> int:
    """A class index from an index or a class name (case-insensitive; a string of digits
    that names no class is an index).  Raises :class:`ExplainError` listing the classes."""
    names = [str(n) for n in model.card.class_names]
    listing = ", ".join(f"{i}={n}" for i, n in enumerate(names))
    if isinstance(target, str):
        lowered = [n.lower() for n in names]
        key = target.strip().lower()
        if key in lowered:
            return lowered.index(key)
        if not key.lstrip("-").isdigit():
            raise ExplainError(
                f"unknown class {target!r} for model {_model_name(model)}; classes: {listing}"
            )
        target = int(key)
    index = int(target)
    if not 0 <= index < len(names):
        raise ExplainError(
            f"class index {index} is out of range for model {_model_name(model)}; "
            f"classes: {listing}"
        )
    return index


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    from importlib import metadata

    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("grad-cam", "torchvision", "numpy", "slidelens"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return tuple(out.items())


def versions() -> dict[str, str]:
    """Versions of what computed an explanation (looked up once per process)."""
    return dict(_versions())


# -- one explanation, step by step -------------------------------------------------------------


class _Explanation:
    """One explanation of a plan; :meth:`run` calls the steps below in order.

    Each step sets the attributes the later ones read; nothing here is shared between
    calls.  The caller holds the model's use gate exclusively (see :func:`_explain`).
    """

    def __init__(
        self,
        source: SlideSource,
        model: ModelLike,
        plan: Plan,
        request: CamRequest,
        tracker: ProgressTracker,
        t_start: float,
        mpp: float | None,
    ) -> None:
        self.source = source
        self.model = model
        self.plan = plan
        self.request = request
        self.tracker = tracker
        self.t_start = t_start
        self.mpp = mpp
        self.n = len(plan.p_ij)
        self.channels = 0
        self._rgb: dict[int, np.ndarray] = {}
        self._kept: dict[int, torch.Tensor] = {}

    def run(self) -> CamResult:
        """Check the request, size the work, report it, score the classes, explain, blend."""
        self._check_request()
        self._choose_batches()
        self._make_settings()
        self._report_total()
        self._open_reader()
        patch_probs, mean_probs = self._score_classes()
        class_index = int(np.argmax(mean_probs)) if self.target_index is None else self.target_index
        raw = stitch(self.plan, self._raw_maps(self._targets(class_index)))
        vmax, norm_doc = normalisation(raw, self.request, self.n)
        self.tracker.finish()
        elapsed = time.perf_counter() - self.t_start
        provenance = self._provenance(raw, norm_doc, mean_probs, class_index, elapsed)
        rects = np.concatenate(
            [
                self.plan.grid.l0_xy(self.plan.p_ij),
                np.full((self.n, 2), self.plan.grid.l0_patch, np.int64),
            ],
            axis=1,
        )
        return CamResult(
            raw=raw,
            l0_origin=self.plan.l0_origin,
            l0_per_px=self.plan.l0_per_px,
            vmax=vmax,
            class_index=class_index,
            class_name=self.names[class_index],
            scores=provenance["scores"],
            patch_l0_rects=rects,
            patch_scores=patch_probs,
            provenance=provenance,
        )

    def _check_request(self) -> None:
        """Method, layer and class from the request, refused before any work is done."""
        model, request = self.model, self.request
        self.spec = spec = method_spec(request.method)
        self.layer_name = (request.layer or _default_layer(model)) if spec.hook_based else None
        reason = _unavailable_reason(spec, model, request.layer)
        if reason is not None:
            raise MethodUnavailableError(f"cannot explain {_model_name(model)}: {reason}")
        if request.ig_steps < 1 or request.occlusion_grid < 1:
            raise ExplainError("ig_steps and occlusion_grid must be at least 1")
        self.segmentation = str(model.card.task) == "segmentation"
        self.target_index = None if request.target is None else resolve_class(model, request.target)
        self.module = model.module
        self.layer = None
        self.layout: str | None = None
        self.reshape = None
        if self.layer_name:
            self.layer_name, self.layer = resolve_layer_named(
                self.module, self.layer_name, _model_name(model)
            )
            declared = getattr(model.card, "cam_layer_layout", None)
            self.layout = layer_layout(self.module, self.layer_name, declared)
            self.reshape = reshape_for(self.module, self.layer_name, declared)
        self.names = [str(c) for c in model.card.class_names]

    def _choose_batches(self) -> None:
        """The model's device, the starting batch sizes, and the chunks read at a time."""
        self.device = device_of(self.model)
        cuda = self.device.type == "cuda"
        self.patch_batch = self.request.patch_batch or (16 if cuda else 4)
        self.masked_batch = self.request.masked_batch or (64 if cuda else 16)
        n, step = self.n, self.patch_batch
        self.chunks = [(i, min(n, i + step)) for i in range(0, n, step)]

    def _make_settings(self) -> None:
        """The blank-glass input (the input size, the baseline) and the methods' settings."""
        self.side = int(self.model.card.patch_size_pixels)
        white = np.full((1, self.side, self.side, 3), 255, np.uint8)
        self.glass = model_inputs(self.model, white, self.device)
        self.size = int(self.glass.shape[-1])
        self.settings = RunSettings(
            patch_batch=self.patch_batch,
            masked_batch=self.masked_batch,
            ig_steps=self.request.ig_steps,
            occlusion_grid=self.request.occlusion_grid,
            baseline=(
                self.glass if self.spec.name in ("integrated-gradients", "occlusion") else None
            ),
        )

    def _report_total(self) -> None:
        """The total work units, reported before any patch is read (Score-CAM: twice if its
        channel count, guessed from the layer's modules, was wrong)."""
        spec, n, tracker = self.spec, self.n, self.tracker
        if spec.name == "scorecam":
            # its work is one masked pass per channel of the layer: report the count read
            # from the layer's modules at once, then check it by running the model up to
            # the layer on the blank patch (and report again if it was wrong)
            assert self.layer is not None
            guess = guess_channels(self.layer)
            if guess is not None:
                tracker.start(n + work_units(spec, n, guess, self.settings), patches=n)
            shape = layer_output_shape(self.module, self.layer, self.glass, self.reshape)
            self.channels = int(shape[1])
            if self.channels != guess:
                tracker.start(n + work_units(spec, n, self.channels, self.settings), patches=n)
        else:
            tracker.start(n + work_units(spec, n, self.channels, self.settings), patches=n)

    def _open_reader(self) -> None:
        """The patch reader; read patches are kept as uint8, their inputs only when few."""
        self.reader = make_patch_reader(self.source, self.plan.grid, self.side)
        self.keep_inputs = self.n <= _KEEP_INPUTS

    def _chunk_inputs(self, c: int) -> torch.Tensor:
        """Model inputs of chunk ``c``: read once, made again unless kept (checks cancel)."""
        if c in self._kept:
            return self._kept[c]
        if c not in self._rgb:
            self.tracker.check()
            i0, i1 = self.chunks[c]
            self._rgb[c] = self.reader.read_many(self.plan.p_ij[i0:i1])
        x = model_inputs(self.model, self._rgb[c], self.device)
        if self.keep_inputs:
            self._kept[c] = x
        return x

    def _score_classes(self) -> tuple[np.ndarray, np.ndarray]:
        """Every patch's class probabilities ``(n, C)`` and their weighted mean ``(C,)``."""
        self.masks = seg_masks(self.plan, self.size) if self.segmentation else None
        score_loop = BatchLoop(self.tracker, self.patch_batch, self.device, counts=True)
        parts = []
        for c, (i0, i1) in enumerate(self.chunks):
            x_c = self._chunk_inputs(c)

            def scores(a: int, b: int, x_c: torch.Tensor = x_c, i0: int = i0) -> np.ndarray:
                seg = None if self.masks is None else self.masks[i0 + a : i0 + b]
                p, w = class_scores(self.model, x_c[a:b], seg, self.tracker)
                return np.concatenate([p, w[:, None]], axis=1)

            parts.append(score_loop.run(i1 - i0, scores))
        table = np.concatenate(parts)
        patch_probs = table[:, :-1].astype(np.float32)
        weights = table[:, -1].astype(np.float64)
        mean_probs = (patch_probs * weights[:, None]).sum(axis=0) / weights.sum()
        return patch_probs, mean_probs

    def _targets(self, class_index: int) -> list[Target]:
        """One target per patch: the class's logit, or its logits over the region's pixels."""
        if self.segmentation:
            assert self.masks is not None
            return [SegmentationTarget(class_index, m) for m in self.masks]
        return [ClassTarget(class_index)] * self.n

    def _raw_maps(self, targets: list[Target]) -> np.ndarray:
        """Every patch's raw map from the method's runner (closed whatever happens)."""
        runner = make_runner(
            self.spec,
            self.module,
            self.layer,
            self.settings,
            self.tracker,
            self.device,
            self.reshape,
        )
        maps: list[np.ndarray] = []
        try:
            for c, (i0, i1) in enumerate(self.chunks):
                self.tracker.check()
                maps.append(runner(self._chunk_inputs(c), targets[i0:i1]))
        finally:
            runner.close()
        return np.concatenate(maps)

    def _provenance(
        self,
        raw: np.ndarray,
        norm_doc: dict[str, Any],
        mean_probs: np.ndarray,
        class_index: int,
        elapsed: float,
    ) -> dict[str, Any]:
        """The JSON-ready record of model, method, layer, class, geometry, timing, versions."""
        spec, model, plan = self.spec, self.model, self.plan
        info = self.source.info
        names = self.names
        return {
            "kind": plan.kind,
            "method": spec.name,
            "method_label": spec.label,
            "hook_based": spec.hook_based,
            "layer": self.layer_name,
            "layer_layout": self.layout,
            "class_index": class_index,
            "class_name": names[class_index],
            "class_from": "predicted" if self.target_index is None else "requested",
            "target": (
                f"sum of class {class_index} logits over the region's pixels of each patch"
                if self.segmentation
                else f"logit of class {class_index}"
            ),
            "model": {
                "name": _model_name(model),
                "sha256": str(model.sha256),
                "kind": _kind(model),
                "task": str(model.card.task),
                "patch_size_pixels": int(model.card.patch_size_pixels),
                "spacing_um_px": float(model.card.spacing_um_px),
                "input_size": self.size,
            },
            "slide": {
                "path": str(info.path),
                "source_id": info.source_id,
                "dimensions": list(info.dimensions),
                "mpp_used": slide_mpp(info, self.mpp),
            },
            "geometry": {
                "l0_origin": list(plan.l0_origin),
                "l0_per_px": plan.l0_per_px,
                "shape": list(raw.shape),
                "l0_patch": plan.grid.l0_patch,
                "l0_stride": plan.grid.l0_stride,
                "overlap": plan.grid.overlap,
                "patches": self.n,
                "background_patches": plan.background_patches,
                "region": list(plan.region.to_int()),
                "blending": "Hann window per patch, weighted mean where patches overlap",
            },
            "normalisation": norm_doc,
            "scores": {nm: float(v) for nm, v in zip(names, mean_probs, strict=True)},
            "settings": self._settings_record(),
            "time_s": round(elapsed, 4),
            "versions": versions(),
        }

    def _settings_record(self) -> dict[str, Any]:
        """The provenance's settings: device, batches, autocast precision, method knobs."""
        name, request = self.spec.name, self.request
        # Score-CAM's masked passes and occlusion's run under the engine's autocast policy
        autocast = name in ("scorecam", "occlusion")
        return {
            "device": str(self.device),
            "patch_batch": self.patch_batch,
            "masked_batch": self.masked_batch,
            "amp": precision_name(amp_dtype(self.device)) if autocast else "fp32",
            **({"ig_steps": request.ig_steps} if name == "integrated-gradients" else {}),
            **({"occlusion_grid": request.occlusion_grid} if name == "occlusion" else {}),
            **(
                {"baseline": "blank glass (white RGB 255)"}
                if name in ("integrated-gradients", "occlusion")
                else {}
            ),
            **({"score_cam_channels": self.channels} if name == "scorecam" else {}),
        }


def _explain(
    source: SlideSource,
    model: ModelLike,
    plan: Plan,
    request: CamRequest,
    tracker: ProgressTracker,
    t_start: float,
    mpp: float | None,
) -> CamResult:
    """One explanation with the model to itself: CAM hooks on a module catch every
    forward pass through it, so a model job's passes (CPU lanes on other threads) wait
    until the explanation is done."""
    from inference.core.threads import use_gate

    with use_gate(model.module).exclusive():
        return _Explanation(source, model, plan, request, tracker, t_start, mpp).run()


def explain_patch(
    source: SlideSource,
    model: ModelLike,
    l0_x: float,
    l0_y: float,
    request: CamRequest | None = None,
    *,
    mpp: float | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> CamResult:
    """Explain the model patch under level-0 point ``(l0_x, l0_y)``.

    The patch is the one of the whole-slide grid at the model's spacing (patch side
    ``round(patch_size_pixels * spacing_um_px / mpp)`` level-0 px) holding the point, so
    it is the patch whose heatmap cell was clicked.  ``mpp`` overrides the slide's own.
    Raises :class:`ExplainError` (point outside the slide, unknown class or layer, method
    unavailable for the model), :class:`ExplainCancelled`, and the slide's errors.
    """
    request = request or CamRequest()
    t0 = time.perf_counter()
    tracker = ProgressTracker(progress, cancel)
    tracker.check()
    model = explanation_model(model)
    plan = plan_patch(source, model, l0_x, l0_y, mpp)
    return _explain(source, model, plan, request, tracker, t0, mpp)


def explain_region(
    source: SlideSource,
    model: ModelLike,
    l0_rect: Rect,
    request: CamRequest | None = None,
    *,
    mpp: float | None = None,
    tissue: TissueMask | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> CamResult:
    """Explain every tissue patch of a level-0 rectangle, blended into one canvas.

    Patches lie on a grid anchored at the rectangle's corner, ``request.overlap`` apart;
    those with less tissue than ``request.tissue_threshold`` inside the rectangle are
    skipped (``tissue``: a mask already computed for this slide, else one is made).  The
    canvas covers the rectangle (clipped to the slide).  Raises :class:`ExplainError` for
    a rectangle outside the slide or without tissue, plus those of :func:`explain_patch`.
    """
    request = request or CamRequest()
    t0 = time.perf_counter()
    tracker = ProgressTracker(progress, cancel)
    tracker.check()
    model = explanation_model(model)
    plan = plan_region(source, model, l0_rect, request, mpp, tissue)
    return _explain(source, model, plan, request, tracker, t0, mpp)
