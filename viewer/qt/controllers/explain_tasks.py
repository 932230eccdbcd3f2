"""The worker side of explanations: the tasks the Explain controller puts on the inference
worker (a model's details, one CAM), what they emit, the CAM preview, and the layer a
pinned explanation becomes.  The task bodies run on the worker thread.

What a CAM task emits carries the slide (:class:`SlideTag`) and the request it was made
for, so the controller drops an answer for a slide closed since, or for an earlier
click.  A model's details belong to no slide."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from inference.core.geometry import Rect
from inference.models.domain import warning_of
from viewer.layers.cam_raster import CamRaster
from viewer.layers.colormaps import apply_colormap
from viewer.layers.heatmap import HeatmapLayer
from viewer.qt.controllers.job_bodies import ModelPool
from viewer.qt.inference_worker import SlideTag, TaskBody, TaskRefused
from viewer.qt.panels.explain import PREVIEW_PX
from viewer.result_layers import domain_record

if TYPE_CHECKING:
    from inference.explain.requests import CamRequest, CamResult, MethodInfo
    from inference.slides import SlideSource

#: Colormap of CAM previews and pinned CAM layers.
CAM_COLORMAP = "jet"


@dataclass(frozen=True)
class ModelInfo:
    """What the Explain panel offers for a model: its classes, methods and layers."""

    folder: Path
    class_names: tuple[str, ...]
    task: str
    methods: list[MethodInfo]
    layers: list[str]
    default_layer: str | None


@dataclass(frozen=True)
class CamProgress:
    """How far an explanation is, for ``slide``, ``request_id`` and panel view ``slot``:
    ``done`` of ``total`` passes (the model run once on one patch, or on one masked copy
    of it) over ``patches`` patches (``None`` until planned); ``slidelens explain``
    counts the same."""

    slide: SlideTag
    request_id: int
    done: int
    total: int
    slot: int = 0
    patches: int | None = None


@dataclass(frozen=True)
class ExplainOutcome:
    """A finished explanation as the GUI gets it, for ``slide`` and ``request_id``.
    ``typed_mpp``: the pixel size the user typed for a slide that states none."""

    cam: CamResult
    patch_rgb: np.ndarray
    overlay_rgb: np.ndarray
    where: str
    slot: int
    slide: SlideTag
    request_id: int
    typed_mpp: float | None = None
    #: The model against this slide (``domain_record``): its pinned layer's warning.
    domain: dict[str, Any] | None = None


def cam_preview(source: SlideSource, cam: CamResult) -> tuple[np.ndarray, np.ndarray]:
    """The explained area's pixels and the CAM over them (jet, half opacity), at most
    :data:`PREVIEW_PX` on the longer side.  Runs on the worker thread."""
    rect = cam.l0_rect
    info = source.info
    scale = max(rect.w, rect.h) / PREVIEW_PX
    level = max(
        (i for i, d in enumerate(info.level_downsamples) if d <= max(1.0, scale)), default=0
    )
    downsample = info.level_downsamples[level]
    lv_x, lv_y = round(rect.x / downsample), round(rect.y / downsample)
    lv_w = max(1, round(rect.w / downsample))
    lv_h = max(1, round(rect.h / downsample))
    rgb = source.read_region(level, lv_x, lv_y, lv_w, lv_h)
    out_w = max(1, round(rect.w / max(scale, 1e-9)))
    out_h = max(1, round(rect.h / max(scale, 1e-9)))
    patch = cv2.resize(rgb, (out_w, out_h), interpolation=cv2.INTER_AREA)
    values = cv2.resize(cam.normalised(), (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    colour = apply_colormap(values, CAM_COLORMAP, 0.0, 1.0)
    alpha = (colour[..., 3:4] / 255.0) * 0.5
    overlay = (patch * (1 - alpha) + colour[..., :3] * alpha).round().astype(np.uint8)
    return patch, overlay


def model_info_task(pool: ModelPool, folder: Path, device: str | None) -> TaskBody:
    """A task that emits the model's :class:`ModelInfo`."""

    def body(cancel: threading.Event, emit: Callable[[object], None]) -> None:
        from inference.engine.device import resolve_device
        from inference.explain.service import available_methods, candidate_layers

        model = pool.get(folder, resolve_device(device), trust=False)
        default = model.cam_target_layer
        emit(
            ModelInfo(
                folder=folder,
                class_names=tuple(model.card.class_names),
                task=model.card.task,
                methods=available_methods(model),
                layers=candidate_layers(model),
                default_layer=default,
            )
        )

    return body


@dataclass(frozen=True)
class CamTask:
    """One explanation to make: a patch under ``point`` or the tissue of ``region``
    (level 0), shown in panel view ``slot``, for ``slide`` and the controller's
    ``request_id`` (one click or drag).  ``mpp_override``: the pixel size the user typed
    for a slide that states none."""

    slide: SlideTag
    request_id: int
    source: SlideSource
    folder: Path
    device: str | None
    request: CamRequest
    point: tuple[float, float] | None
    region: Rect | None
    mpp_override: float | None
    where: str
    slot: int


class _Progress:
    """The progress of one CAM task, emitted as :class:`CamProgress` (a
    :class:`~inference.explain.progress.PlanListener`: it learns the patch count)."""

    def __init__(self, task: CamTask, emit: Callable[[object], None]) -> None:
        self.task = task
        self.emit = emit
        self.patches: int | None = None

    def planned(self, patches: int) -> None:
        self.patches = patches

    def __call__(self, done: int, total: int) -> None:
        task = self.task
        self.emit(CamProgress(task.slide, task.request_id, done, total, task.slot, self.patches))


def cam_task(pool: ModelPool, task: CamTask) -> TaskBody:
    """A task that emits :class:`CamProgress` while it works, then an
    :class:`ExplainOutcome` (nothing when cancelled); what cannot be explained as asked
    (a region too big or without tissue, an unknown class) raises :class:`TaskRefused`
    with the reason, which the user reads and the log keeps without a traceback."""

    def body(cancel: threading.Event, emit: Callable[[object], None]) -> None:
        from inference.engine.device import resolve_device
        from inference.engine.patches import MissingMppError
        from inference.explain.methods import ExplainCancelled, ExplainError
        from inference.explain.service import explain_patch, explain_region

        source, point, region = task.source, task.point, task.region
        model = pool.get(task.folder, resolve_device(task.device), trust=False)
        progress = _Progress(task, emit)
        try:
            if point is not None:
                cam = explain_patch(
                    source,
                    model,
                    point[0],
                    point[1],
                    task.request,
                    mpp=task.mpp_override,
                    progress=progress,
                    cancel=cancel,
                )
            else:
                assert region is not None
                cam = explain_region(
                    source,
                    model,
                    region,
                    task.request,
                    mpp=task.mpp_override,
                    progress=progress,
                    cancel=cancel,
                )
        except ExplainCancelled:
            return  # the worker reports the task as cancelled
        except (ExplainError, MissingMppError) as exc:  # e.g. a region too big
            raise TaskRefused(str(exc)) from exc
        patch, overlay = cam_preview(source, cam)
        emit(
            ExplainOutcome(
                cam,
                patch,
                overlay,
                task.where,
                task.slot,
                task.slide,
                task.request_id,
                typed_mpp=task.mpp_override,
                domain=domain_record(model.card, source.info.properties),
            )
        )

    return body


def cam_layer(outcome: ExplainOutcome) -> HeatmapLayer:
    """The layer a pinned explanation becomes (with its provenance)."""
    cam = outcome.cam
    method = str(cam.provenance.get("method_label", "CAM"))
    label = f"{cam.class_name} ({method})"
    provenance: dict[str, Any] = {**cam.provenance, "kind": "cam", "where": outcome.where}
    if outcome.typed_mpp is not None:  # the slide states none: the user's size was used
        provenance.update(typed_mpp=outcome.typed_mpp, mpp_source="typed")
    if outcome.domain is not None:
        provenance["domain"] = outcome.domain
    layer = HeatmapLayer(
        f"{method} · {cam.class_name} · {outcome.where}",
        CamRaster(cam, label),
        colormap=CAM_COLORMAP,
        opacity=0.55,
        value_label="relevance",
        provenance=provenance,
    )
    layer.interpolation = "smooth"
    layer.warning = warning_of(provenance)
    return layer
