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
neighbouring patches stay comparable (a weakly activated patch stays dim).

Threading: the functions run on the calling thread and block.  ``progress(done, total)``
is called on that thread, first with ``done == 0`` as soon as the total is known, before
any patch is read or the model runs (Score-CAM reads its channel count off the layer's
modules, checks it by running the model up to the layer once on a blank patch, and
reports ``(0, total)`` again if it differed), then after every batch, and with
``done == total`` at the end.  Setting ``cancel`` stops the work between two batches with
:class:`ExplainCancelled`.  Hooks are registered for the duration of one call only and are
removed whatever happens; the model's parameters are left as they were.  Do not explain
with the same model from two threads at once.

torch and pytorch_grad_cam are imported inside functions, so importing this module is free.
"""

from __future__ import annotations

import functools
import math
import platform
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.core.geometry import Rect, patch_size_on_slide
from inference.engine.patches import PatchGrid, make_patch_grid, make_patch_reader, slide_mpp
from inference.engine.tissue import DEFAULT_TISSUE_THRESHOLD, TissueMask
from inference.explain.methods import (
    HOOK_FREE_METHODS,
    METHODS,
    TORCHSCRIPT_REASON,
    ExplainCancelled,
    ExplainError,
    LayerNotFoundError,
    MethodSpec,
    MethodUnavailableError,
    ProgressCallback,
    ProgressTracker,
    method_spec,
)

if TYPE_CHECKING:
    import torch

    from inference.engine.runner import ModelLike
    from inference.explain.methods import Target
    from inference.slides import SlideSource

__all__ = [
    "HOOK_FREE_METHODS",
    "METHODS",
    "CamRequest",
    "CamResult",
    "ExplainCancelled",
    "ExplainError",
    "LayerNotFoundError",
    "MethodInfo",
    "MethodUnavailableError",
    "ProgressCallback",
    "available_methods",
    "candidate_layers",
    "explain_patch",
    "explain_region",
    "preload",
    "resolve_class",
]

#: Default percentile of a region's raw values that maps to the top of the colour scale.
DEFAULT_PERCENTILE = 99.0
#: Default overlap of region patches (fraction of the patch side) blended at the seams:
#: half a patch for fast methods (every point lies in the interior of some patch, so the
#: border effects of zero padding fade out), a quarter for slow ones (fewer patches).
DEFAULT_REGION_OVERLAP = 0.5
SLOW_METHOD_REGION_OVERLAP = 0.25
#: Longest side of a CAM canvas in pixels; CAM pixels grow coarser to fit.
MAX_CAM_SIDE = 4096
#: A region with more tissue patches than this is refused (ask for a smaller one).
MAX_REGION_PATCHES = 2048
#: Regions of at most this many patches keep their model inputs between the two passes.
_KEEP_INPUTS = 64


@dataclass(frozen=True)
class CamRequest:
    """What to explain and how.

    ``target``: class index or name (``None``: the predicted class; for a region, the
    class with the highest mean probability over its patches).  ``layer``: dotted module
    path (``None``: the card's ``cam_target_layer``).  ``overlap``: fraction of the patch
    side that region patches share (``None``: :data:`DEFAULT_REGION_OVERLAP`, or
    :data:`SLOW_METHOD_REGION_OVERLAP` for slow methods).  ``percentile``: the raw value
    mapped to 1 is this percentile over the whole canvas; ``vmax`` fixes it instead (e.g.
    to compare two explanations).  ``patch_batch`` / ``masked_batch``: starting batch
    sizes (``None``: by device); they halve on out-of-memory.
    """

    method: str = "gradcam"
    target: int | str | None = None
    layer: str | None = None
    overlap: float | None = None
    percentile: float = DEFAULT_PERCENTILE
    vmax: float | None = None
    tissue_threshold: float = DEFAULT_TISSUE_THRESHOLD
    patch_batch: int | None = None
    masked_batch: int | None = None
    ig_steps: int = 32
    occlusion_grid: int = 7
    max_side: int = MAX_CAM_SIDE
    max_patches: int = MAX_REGION_PATCHES


@dataclass(frozen=True, eq=False)
class CamResult:
    """A CAM in slide coordinates.

    ``raw``: ``(H, W)`` float32, the blended raw map (non-negative, method units), NaN where
    no patch was explained (background).  CAM pixel ``(i, j)`` covers level-0
    ``[x0 + j * l0_per_px, x0 + (j + 1) * l0_per_px)`` (and likewise in y) with
    ``(x0, y0) = l0_origin``.  ``vmax``: the shared normalisation; displayed value =
    ``clip(raw / vmax, 0, 1)`` (:meth:`normalised`).  ``scores``: class name to probability
    (mean over the explained patches, or over the region's pixels for segmentation).
    ``patch_l0_rects``: ``(n, 4)`` int64 x, y, w, h of the explained patches;
    ``patch_scores``: their ``(n, C)`` probabilities.  ``provenance``: JSON-ready record of
    model, method, layer, class, normalisation, timing and versions.
    """

    raw: np.ndarray
    l0_origin: tuple[float, float]
    l0_per_px: float
    vmax: float
    class_index: int
    class_name: str
    scores: Mapping[str, float]
    patch_l0_rects: np.ndarray
    patch_scores: np.ndarray
    provenance: Mapping[str, Any] = field(default_factory=dict)

    @property
    def l0_rect(self) -> Rect:
        """The level-0 rectangle the canvas covers."""
        h, w = self.raw.shape
        return Rect(self.l0_origin[0], self.l0_origin[1], w * self.l0_per_px, h * self.l0_per_px)

    def normalised(self) -> np.ndarray:
        """``clip(raw / vmax, 0, 1)`` as float32, NaN kept where nothing was explained."""
        with np.errstate(invalid="ignore"):
            return np.clip(self.raw / self.vmax, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class MethodInfo:
    """A method as the viewer lists it: ``available`` with a ``reason`` (tooltip) if not."""

    name: str
    label: str
    description: str
    hook_based: bool
    class_specific: bool
    slow: bool
    available: bool
    reason: str | None = None


def preload() -> None:
    """Import torch and pytorch-grad-cam now (about 2 s once per process, most of it
    scikit-learn, which pytorch-grad-cam imports), so that the first click does not wait
    for it.  Call it on the inference worker thread when the viewer starts."""
    from inference.explain.methods import cam_classes

    cam_classes()


# -- what can explain what ---------------------------------------------------------------------


def _model_name(model: ModelLike) -> str:
    return str(getattr(model.card, "name", "model"))


def _scripted(model: ModelLike) -> bool:
    kind = getattr(model, "kind", None)
    if kind is not None:
        return bool(kind == "torchscript")
    from inference.explain.methods import is_torchscript

    return is_torchscript(model.module)


def _default_layer(model: ModelLike) -> str | None:
    layer = getattr(model, "cam_target_layer", None)
    if layer is None:
        layer = getattr(model.card, "cam_target_layer", None)
    return str(layer) if layer else None


def _unavailable_reason(spec: MethodSpec, model: ModelLike, layer: str | None) -> str | None:
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
    TorchScript model (it accepts no hooks), or no target layer known.
    """
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
    convolution, in the model's module order (deepest blocks last), the default
    (``cam_target_layer``) included.  Empty for TorchScript (no hooks, no layers)."""
    from torch import nn

    if _scripted(model):
        return []
    names = [
        name
        for name, sub in model.module.named_modules()
        if name and any(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in sub.modules())
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


# -- planning ----------------------------------------------------------------------------------


@dataclass
class _Plan:
    """Patches to explain and the canvas they are blended into."""

    grid: PatchGrid
    p_ij: np.ndarray
    l0_origin: tuple[float, float]
    l0_per_px: float
    shape: tuple[int, int]
    tile_px: int
    region: Rect  # segmentation targets cover the patch's part inside it
    kind: str  # "patch" or "region"
    background_patches: int = 0


def _input_size(model: ModelLike) -> int:
    return int(getattr(model.card, "input_size", model.card.patch_size_pixels))


def _plan_patch(
    source: SlideSource, model: ModelLike, l0_x: float, l0_y: float, mpp: float | None
) -> _Plan:
    info = source.info
    width, height = info.dimensions
    if not (0 <= l0_x < width and 0 <= l0_y < height):
        raise ExplainError(
            f"point ({l0_x:g}, {l0_y:g}) is outside the slide {info.path.name} "
            f"({width} x {height} level-0 pixels)"
        )
    grid = make_patch_grid(info, model.card, mpp_override=mpp)
    p = grid.p_index_of(l0_x, l0_y)
    assert p is not None  # inside the slide means inside the grid
    rect = grid.patch_l0_rect(*p)
    tile = max(1, min(_input_size(model), grid.l0_patch))
    return _Plan(
        grid=grid,
        p_ij=np.array([p], np.int32),
        l0_origin=(rect.x, rect.y),
        l0_per_px=grid.l0_patch / tile,
        shape=(tile, tile),
        tile_px=tile,
        region=rect,
        kind="patch",
    )


def _plan_region(
    source: SlideSource,
    model: ModelLike,
    l0_rect: Rect,
    request: CamRequest,
    mpp: float | None,
    tissue: TissueMask | None,
) -> _Plan:
    from inference.engine.patches import stride_for_overlap

    info = source.info
    width, height = info.dimensions
    region = l0_rect.intersect(Rect(0, 0, width, height))
    if l0_rect.is_empty() or region.is_empty():
        raise ExplainError(
            f"region {l0_rect.to_int()} lies outside the slide {info.path.name} "
            f"({width} x {height} level-0 pixels)"
        )
    x0, y0, w, h = region.to_int()
    region = Rect(x0, y0, w, h)
    l0_patch = patch_size_on_slide(
        int(model.card.patch_size_pixels),
        float(model.card.spacing_um_px),
        slide_mpp(info, mpp),
    )
    overlap = request.overlap
    if overlap is None:
        slow = method_spec(request.method).slow
        overlap = SLOW_METHOD_REGION_OVERLAP if slow else DEFAULT_REGION_OVERLAP
    try:
        l0_stride = stride_for_overlap(l0_patch, overlap)
    except ValueError as exc:
        raise ExplainError(str(exc)) from None
    cols = 1 if w <= l0_patch else math.ceil((w - l0_patch) / l0_stride) + 1
    rows = 1 if h <= l0_patch else math.ceil((h - l0_patch) / l0_stride) + 1
    grid = PatchGrid(
        l0_patch=l0_patch, l0_stride=l0_stride, l0_origin=(x0, y0), p_cols=cols, p_rows=rows
    )
    p_ij = grid.all_p_ij()
    if request.tissue_threshold > 0:
        if tissue is None:
            from inference.engine.tissue import tissue_mask

            tissue = tissue_mask(source)
        # the tissue a patch brings to the region, not what it has past the region's edge
        rects = grid.l0_rects(p_ij)
        clipped = np.array(
            [Rect(*r).intersect(region).to_int() for r in rects], np.float64
        ).reshape(-1, 4)
        keep = tissue.fractions_in(clipped) >= request.tissue_threshold
        background = int((~keep).sum())
        p_ij = p_ij[keep]
    else:
        background = 0
    if len(p_ij) == 0:
        raise ExplainError(
            f"region {region.to_int()} of {info.path.name} holds no tissue (every patch is "
            f"background at tissue threshold {request.tissue_threshold}); pick a region "
            "with tissue"
        )
    if len(p_ij) > request.max_patches:
        raise ExplainError(
            f"region {region.to_int()} of {info.path.name} holds {len(p_ij)} tissue patches, "
            f"more than {request.max_patches} at once; explain a smaller region"
        )
    fit = math.floor(l0_patch * request.max_side / max(w, h))
    tile = max(1, min(_input_size(model), l0_patch, fit))
    l0_per_px = l0_patch / tile
    shape = (max(1, math.ceil(h / l0_per_px)), max(1, math.ceil(w / l0_per_px)))
    return _Plan(
        grid=grid,
        p_ij=p_ij,
        l0_origin=(float(x0), float(y0)),
        l0_per_px=l0_per_px,
        shape=shape,
        tile_px=tile,
        region=region,
        kind="region",
        background_patches=background,
    )


# -- running -----------------------------------------------------------------------------------


def _device_of(model: ModelLike) -> torch.device:
    import torch

    try:
        return next(iter(model.module.parameters())).device
    except StopIteration:
        return torch.device(str(model.device))


def _inputs(model: ModelLike, rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    return model.preprocess(rgb).to(device).float()


def _seg_masks(plan: _Plan, size: int) -> list[np.ndarray]:
    """Per patch, the input pixels inside the plan's region (segmentation targets)."""
    out = []
    region = plan.region
    scale = size / plan.grid.l0_patch
    for l0_x, l0_y in plan.grid.l0_xy(plan.p_ij):
        x0 = int(np.clip(round((region.x - l0_x) * scale), 0, size))
        x1 = int(np.clip(round((region.right - l0_x) * scale), 0, size))
        y0 = int(np.clip(round((region.y - l0_y) * scale), 0, size))
        y1 = int(np.clip(round((region.bottom - l0_y) * scale), 0, size))
        mask = np.zeros((size, size), bool)
        mask[y0:y1, x0:x1] = True
        out.append(mask)
    return out


def _class_scores(
    model: ModelLike,
    x: torch.Tensor,
    masks: list[np.ndarray] | None,
    tracker: ProgressTracker,
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(n, C)`` of a batch of patches and their weights in the region mean.

    Classification: each patch weighs 1.  Segmentation: the mean over the patch's pixels
    inside the region (``masks``), weighted by their count.
    """
    import torch
    import torch.nn.functional as F

    tracker.check()
    with torch.inference_mode():
        out = model.postprocess(model.module(x)).float()
    if out.ndim != 4:
        return out.reshape(len(x), -1).cpu().numpy().astype(np.float32), np.ones(len(x))
    assert masks is not None
    probs = np.empty((len(x), out.shape[1]), np.float32)
    weights = np.empty(len(x), np.float64)
    for j in range(len(x)):
        m = torch.from_numpy(masks[j]).to(out.device)
        if tuple(m.shape) != tuple(out.shape[-2:]):
            m = F.interpolate(m[None, None].float(), size=tuple(out.shape[-2:]), mode="nearest")
            m = m[0, 0].bool()
        count = int(m.sum())
        mean = out[j][:, m].mean(dim=1) if count else out[j].mean(dim=(1, 2))
        probs[j] = mean.cpu().numpy()
        weights[j] = float(max(count, 1))
    return probs, weights


def _stitch(plan: _Plan, maps: np.ndarray) -> np.ndarray:
    """Blend per-patch raw maps into the plan's canvas (Hann weights; NaN where none)."""
    import cv2

    from inference.results.store import hann_weights

    h, w = plan.shape
    t = plan.tile_px
    sums = np.zeros((h, w), np.float64)
    weights = np.zeros((h, w), np.float64)
    window = hann_weights(t).astype(np.float64)
    ox, oy = plan.l0_origin
    for (l0_x, l0_y), cam in zip(plan.grid.l0_xy(plan.p_ij), maps, strict=True):
        src: np.ndarray = np.asarray(cam, np.float32)
        if src.shape != (t, t):
            shrink = src.shape[0] > t or src.shape[1] > t
            src = cv2.resize(
                src, (t, t), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            )
        m_x = round((l0_x - ox) / plan.l0_per_px)
        m_y = round((l0_y - oy) / plan.l0_per_px)
        x0, y0 = max(m_x, 0), max(m_y, 0)
        x1, y1 = min(m_x + t, w), min(m_y + t, h)
        if x1 <= x0 or y1 <= y0:
            continue
        tile = src[y0 - m_y : y1 - m_y, x0 - m_x : x1 - m_x]
        win = window[y0 - m_y : y1 - m_y, x0 - m_x : x1 - m_x]
        sums[y0:y1, x0:x1] += np.maximum(tile, 0) * win
        weights[y0:y1, x0:x1] += win
    out = np.full((h, w), np.nan, np.float32)
    has = weights > 0
    out[has] = (sums[has] / weights[has]).astype(np.float32)
    return out


def _normalisation(
    raw: np.ndarray, request: CamRequest, n_patches: int
) -> tuple[float, dict[str, Any]]:
    values = raw[np.isfinite(raw)]
    if request.vmax is not None:
        if not request.vmax > 0:
            raise ExplainError(f"vmax must be positive, not {request.vmax}")
        return float(request.vmax), {
            "kind": "fixed",
            "vmin": 0.0,
            "vmax": float(request.vmax),
            "display": "clip(raw / vmax, 0, 1)",
        }
    if not 0 < request.percentile <= 100:
        raise ExplainError(f"percentile must be in (0, 100], not {request.percentile}")
    vmax = float(np.percentile(values, request.percentile)) if values.size else 0.0
    note = None
    if not vmax > 0:
        top = float(values.max()) if values.size else 0.0
        vmax, note = (top, "percentile was 0; used the maximum") if top > 0 else (1.0, "map is 0")
    doc: dict[str, Any] = {
        "kind": "shared-percentile",
        "percentile": request.percentile,
        "vmin": 0.0,
        "vmax": vmax,
        "over": f"every explained pixel of the {n_patches} blended patch(es), one range",
        "display": "clip(raw / vmax, 0, 1)",
        "per_patch_minmax": False,
    }
    if note:
        doc["note"] = note
    return vmax, doc


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


def _explain(
    source: SlideSource,
    model: ModelLike,
    plan: _Plan,
    request: CamRequest,
    tracker: ProgressTracker,
    t_start: float,
    mpp: float | None,
) -> CamResult:
    """:func:`_explain_alone` with the model to itself: CAM hooks on a module catch
    every forward pass through it, so a model job's passes (CPU lanes on other threads)
    wait until the explanation is done."""
    from inference.core.threads import use_gate

    with use_gate(model.module).exclusive():
        return _explain_alone(source, model, plan, request, tracker, t_start, mpp)


def _explain_alone(
    source: SlideSource,
    model: ModelLike,
    plan: _Plan,
    request: CamRequest,
    tracker: ProgressTracker,
    t_start: float,
    mpp: float | None,
) -> CamResult:

    from inference.explain.methods import (
        BatchLoop,
        ClassTarget,
        RunSettings,
        SegmentationTarget,
        guess_channels,
        layer_output_shape,
        make_runner,
        resolve_layer,
        work_units,
    )

    spec = method_spec(request.method)
    layer_name = (request.layer or _default_layer(model)) if spec.hook_based else None
    reason = _unavailable_reason(spec, model, request.layer)
    if reason is not None:
        raise MethodUnavailableError(f"cannot explain {_model_name(model)}: {reason}")
    if request.ig_steps < 1 or request.occlusion_grid < 1:
        raise ExplainError("ig_steps and occlusion_grid must be at least 1")
    segmentation = str(model.card.task) == "segmentation"
    target_index = None if request.target is None else resolve_class(model, request.target)
    module = model.module
    layer = resolve_layer(module, layer_name, _model_name(model)) if layer_name else None
    device = _device_of(model)
    cuda = device.type == "cuda"
    n = len(plan.p_ij)
    patch_batch = request.patch_batch or (16 if cuda else 4)
    masked_batch = request.masked_batch or (64 if cuda else 16)
    chunks = [(i, min(n, i + patch_batch)) for i in range(0, n, patch_batch)]

    # the total is known before any patch is read: the first report comes at once
    side = int(model.card.patch_size_pixels)
    glass = _inputs(model, np.full((1, side, side, 3), 255, np.uint8), device)
    size = int(glass.shape[-1])
    settings = RunSettings(
        patch_batch=patch_batch,
        masked_batch=masked_batch,
        ig_steps=request.ig_steps,
        occlusion_grid=request.occlusion_grid,
        baseline=glass if spec.name in ("integrated-gradients", "occlusion") else None,
    )
    channels = 0
    if spec.name == "scorecam":
        # its work is one masked pass per channel of the layer: report the count read
        # from the layer's modules at once, then check it by running the model up to
        # the layer on the blank patch (and report again if it was wrong)
        assert layer is not None
        guess = guess_channels(layer)
        if guess is not None:
            tracker.start(n + work_units(spec, n, guess, settings))
        channels = int(layer_output_shape(module, layer, glass)[1])
        if channels != guess:
            tracker.start(n + work_units(spec, n, channels, settings))
    else:
        tracker.start(n + work_units(spec, n, channels, settings))

    # patches are read chunk by chunk and kept as uint8; the model inputs are kept
    # too when they are few, else made again for the second pass
    reader = make_patch_reader(source, plan.grid, side)
    rgb: dict[int, np.ndarray] = {}
    kept: dict[int, torch.Tensor] = {}
    keep_inputs = n <= _KEEP_INPUTS

    def chunk_inputs(c: int) -> torch.Tensor:
        if c in kept:
            return kept[c]
        if c not in rgb:
            tracker.check()
            rgb[c] = reader.read_many(plan.p_ij[chunks[c][0] : chunks[c][1]])
        x = _inputs(model, rgb[c], device)
        if keep_inputs:
            kept[c] = x
        return x

    # class scores (and the predicted class) first: one target for the whole canvas
    masks = _seg_masks(plan, size) if segmentation else None
    score_loop = BatchLoop(tracker, patch_batch, device, counts=True)
    parts = []
    for c, (i0, i1) in enumerate(chunks):
        x_c = chunk_inputs(c)

        def scores(a: int, b: int, x_c: torch.Tensor = x_c, i0: int = i0) -> np.ndarray:
            seg = None if masks is None else masks[i0 + a : i0 + b]
            p, w = _class_scores(model, x_c[a:b], seg, tracker)
            return np.concatenate([p, w[:, None]], axis=1)

        parts.append(score_loop.run(i1 - i0, scores))
    table = np.concatenate(parts)
    patch_probs = table[:, :-1].astype(np.float32)
    weights = table[:, -1].astype(np.float64)
    mean_probs = (patch_probs * weights[:, None]).sum(axis=0) / weights.sum()
    class_index = int(np.argmax(mean_probs)) if target_index is None else target_index
    names = [str(c) for c in model.card.class_names]
    targets: list[Target]
    if segmentation:
        assert masks is not None
        targets = [SegmentationTarget(class_index, m) for m in masks]
    else:
        targets = [ClassTarget(class_index)] * n

    runner = make_runner(spec, module, layer, settings, tracker, device)
    maps: list[np.ndarray] = []
    try:
        for c, (i0, i1) in enumerate(chunks):
            tracker.check()
            maps.append(runner(chunk_inputs(c), targets[i0:i1]))
    finally:
        runner.close()
    raw_maps = np.concatenate(maps)
    raw = _stitch(plan, raw_maps)
    vmax, norm_doc = _normalisation(raw, request, n)
    tracker.finish()
    elapsed = time.perf_counter() - t_start

    rects = np.concatenate(
        [plan.grid.l0_xy(plan.p_ij), np.full((n, 2), plan.grid.l0_patch, np.int64)], axis=1
    )
    info = source.info
    provenance: dict[str, Any] = {
        "kind": plan.kind,
        "method": spec.name,
        "method_label": spec.label,
        "hook_based": spec.hook_based,
        "layer": layer_name,
        "class_index": class_index,
        "class_name": names[class_index],
        "class_from": "predicted" if target_index is None else "requested",
        "target": (
            f"sum of class {class_index} logits over the region's pixels of each patch"
            if segmentation
            else f"logit of class {class_index}"
        ),
        "model": {
            "name": _model_name(model),
            "sha256": str(model.sha256),
            "kind": "torchscript" if _scripted(model) else "eager",
            "task": str(model.card.task),
            "patch_size_pixels": int(model.card.patch_size_pixels),
            "spacing_um_px": float(model.card.spacing_um_px),
            "input_size": size,
        },
        "slide": {
            "path": str(info.path),
            "source_id": info.source_id,
            "dimensions": list(info.dimensions),
            "mpp_used": slide_mpp(info, mpp),
        },
        "geometry": {
            "l0_origin": list(plan.l0_origin),
            "l0_per_px": plan.l0_per_px,
            "shape": list(raw.shape),
            "l0_patch": plan.grid.l0_patch,
            "l0_stride": plan.grid.l0_stride,
            "overlap": plan.grid.overlap,
            "patches": n,
            "background_patches": plan.background_patches,
            "region": list(plan.region.to_int()),
            "blending": "Hann window per patch, weighted mean where patches overlap",
        },
        "normalisation": norm_doc,
        "scores": {nm: float(v) for nm, v in zip(names, mean_probs, strict=True)},
        "settings": {
            "device": str(device),
            "patch_batch": patch_batch,
            "masked_batch": masked_batch,
            "amp": "fp16" if cuda and spec.name in ("scorecam", "occlusion") else "fp32",
            **({"ig_steps": request.ig_steps} if spec.name == "integrated-gradients" else {}),
            **({"occlusion_grid": request.occlusion_grid} if spec.name == "occlusion" else {}),
            **(
                {"baseline": "blank glass (white RGB 255)"}
                if spec.name in ("integrated-gradients", "occlusion")
                else {}
            ),
            **({"score_cam_channels": channels} if spec.name == "scorecam" else {}),
        },
        "time_s": round(elapsed, 4),
        "versions": versions(),
    }
    return CamResult(
        raw=raw,
        l0_origin=plan.l0_origin,
        l0_per_px=plan.l0_per_px,
        vmax=vmax,
        class_index=class_index,
        class_name=names[class_index],
        scores=provenance["scores"],
        patch_l0_rects=rects,
        patch_scores=patch_probs,
        provenance=provenance,
    )


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
    plan = _plan_patch(source, model, l0_x, l0_y, mpp)
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
    plan = _plan_region(source, model, l0_rect, request, mpp, tissue)
    return _explain(source, model, plan, request, tracker, t0, mpp)
