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
from viewer.layers.cam_raster import CamRaster
from viewer.layers.colormaps import apply_colormap
from viewer.layers.heatmap import HeatmapLayer
from viewer.qt.controllers.inference_jobs import ModelPool
from viewer.qt.inference_worker import SlideTag, TaskBody
from viewer.qt.panels.explain import PREVIEW_PX

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
    """How far a slow explanation is, for ``slide`` and ``request_id``."""

    slide: SlideTag
    request_id: int
    done: int
    total: int


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


def cam_task(pool: ModelPool, task: CamTask) -> TaskBody:
    """A task that emits :class:`CamProgress` while it works, then an
    :class:`ExplainOutcome` (nothing when cancelled)."""

    def body(cancel: threading.Event, emit: Callable[[object], None]) -> None:
        from inference.engine.device import resolve_device
        from inference.explain.service import explain_patch, explain_region

        source, point, region = task.source, task.point, task.region
        model = pool.get(task.folder, resolve_device(task.device), trust=False)

        def progress(done: int, total: int) -> None:
            emit(CamProgress(task.slide, task.request_id, done, total))

        from inference.explain.methods import ExplainCancelled

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
    layer = HeatmapLayer(
        f"{method} · {cam.class_name} · {outcome.where}",
        CamRaster(cam, label),
        colormap=CAM_COLORMAP,
        opacity=0.55,
        value_label="relevance",
        provenance=provenance,
    )
    layer.interpolation = "smooth"
    return layer
