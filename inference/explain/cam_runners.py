"""Hook-based methods: pytorch-grad-cam's CAMs returning raw maps, and their runner.

Contract: :func:`cam_classes` gives pytorch-grad-cam's classes (``gradcam``,
``gradcam++``, ``xgradcam``, ``layercam``, ``hirescam``, ``eigencam``, ``scorecam``) with
one change to its template method (``BaseCAM.compute_cam_per_layer`` /
``aggregate_multi_layers``): the map of each input is returned raw (ReLU only) at the
target layer's resolution, instead of being min-max scaled to 0..1 and resized by
``scale_cam_image``.  Score-CAM overrides only ``get_cam_weights``
(:func:`score_cam_weights`), with our own loop over channel batches so that it reports
progress, stops between batches when cancelled, halves its batch on out-of-memory and
runs its masked forward passes under the engine's mixed-precision policy
(:func:`inference.engine.device.autocast`: bf16 or fp16 on CUDA).  Eigen-CAM keeps the
library's projection but computes it with an economy SVD
(:func:`first_component_projection`; the library's full SVD needs ``(H*W)^2`` floats,
20 GB for a 224 x 224 segmentation layer).  :class:`HookCamRunner` holds the hooks from
construction to ``close``, and hands a layer's ``reshape`` (tokens or channels-last maps
to ``(N, C, h, w)``, :mod:`inference.explain.reshape`) to the CAM's constructor as
pytorch-grad-cam's ``reshape_transform``.  torch and pytorch_grad_cam are imported inside functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.engine.device import autocast
from inference.explain.methods import MethodSpec
from inference.explain.progress import BatchLoop
from inference.explain.runner_base import frozen_parameters, score_batch
from inference.explain.targets import Target

if TYPE_CHECKING:
    import torch
    from torch import nn


@functools.cache
def cam_classes() -> dict[str, type]:
    """pytorch-grad-cam's classes with our raw-map template step (built on first use)."""
    from pytorch_grad_cam import (
        EigenCAM,
        GradCAM,
        GradCAMPlusPlus,
        HiResCAM,
        LayerCAM,
        ScoreCAM,
        XGradCAM,
    )

    class RawMaps:
        """Replaces the template's scaling step: ReLU only, at the layer's resolution.

        ``BaseCAM`` min-max scales every image to 0..1 (``scale_cam_image``), which makes
        neighbouring patches incomparable; the caller normalises a whole region at once.
        """

        activations_and_grads: Any
        target_layers: list[Any]
        get_cam_image: Callable[..., np.ndarray]

        def compute_cam_per_layer(
            self, input_tensor: torch.Tensor, targets: list[Target], eigen_smooth: bool
        ) -> list[np.ndarray]:
            acts = [a.cpu().data.numpy() for a in self.activations_and_grads.activations]
            grads = [g.cpu().data.numpy() for g in self.activations_and_grads.gradients]
            cams = []
            for i, layer in enumerate(self.target_layers):
                a = acts[i] if i < len(acts) else None
                g = grads[i] if i < len(grads) else None
                cam = self.get_cam_image(input_tensor, layer, targets, a, g, eigen_smooth)
                cams.append(np.maximum(np.nan_to_num(cam), 0).astype(np.float32))
            return cams

        def aggregate_multi_layers(self, cams: list[np.ndarray]) -> np.ndarray:
            return np.mean(np.stack(cams, axis=1), axis=1)

    class LoopScoreCAM(RawMaps, ScoreCAM):
        """Score-CAM whose channel loop reports progress, cancels, and adapts its batch."""

        loop: BatchLoop

        def get_cam_weights(
            self,
            input_tensor: torch.Tensor,
            target_layer: Any,
            targets: list[Target],
            activations: np.ndarray,
            grads: Any,
        ) -> np.ndarray:
            return score_cam_weights(
                self.model,
                input_tensor,
                targets,
                activations,
                self.loop,
                after_batch=self.activations_and_grads.activations.clear,
            )

    class LeanEigenCAM(RawMaps, EigenCAM):
        """Eigen-CAM whose projection uses an economy SVD.

        The library's ``get_2d_projection`` asks for the full ``U`` of an
        ``(H*W) x C`` matrix, ``(H*W)^2`` floats: 20 GB for a 224 x 224 layer.
        """

        def get_cam_image(
            self,
            input_tensor: torch.Tensor,
            target_layer: Any,
            targets: list[Target],
            activations: np.ndarray,
            grads: Any,
            eigen_smooth: bool,
        ) -> np.ndarray:
            return first_component_projection(activations)

    def raw(cls: type) -> type:
        return type(f"Raw{cls.__name__}", (RawMaps, cls), {})

    return {
        "gradcam": raw(GradCAM),
        "gradcam++": raw(GradCAMPlusPlus),
        "xgradcam": raw(XGradCAM),
        "layercam": raw(LayerCAM),
        "hirescam": raw(HiResCAM),
        "eigencam": LeanEigenCAM,
        "scorecam": LoopScoreCAM,
    }


def first_component_projection(activations: np.ndarray) -> np.ndarray:
    """Eigen-CAM's map: each sample's centred activations ``(H*W, C)`` projected on their
    first right singular vector, ``(n, H, W)`` float32: pytorch-grad-cam's
    ``get_2d_projection`` (same LAPACK call, so the same sign), with an economy SVD.

    NumPy's BLAS runs on one thread here: its threads next to torch's busy OpenMP
    threads made each SVD some 30 times slower on a two-core machine.
    """
    from threadpoolctl import threadpool_limits  # a dependency of pytorch-grad-cam's sklearn

    acts = np.nan_to_num(np.asarray(activations, np.float32))
    out = []
    with threadpool_limits(limits=1, user_api="blas"):
        for sample in acts:
            flat = sample.reshape(sample.shape[0], -1).T
            flat = flat - flat.mean(axis=0)
            _, _, vt = np.linalg.svd(flat, full_matrices=False)
            out.append((flat @ vt[0]).reshape(sample.shape[1:]))
    return np.asarray(out, np.float32)


def score_cam_weights(
    module: Any,
    x: torch.Tensor,
    targets: Sequence[Target],
    activations: np.ndarray,
    loop: BatchLoop,
    *,
    after_batch: Callable[[], None] | None = None,
) -> np.ndarray:
    """Score-CAM channel weights ``(n, C)``: softmax over channels of the target's score
    on the input masked by each channel's activation map (upsampled, scaled to 0..1).

    Masked inputs are made batch by batch (memory stays bounded); every batch is one
    ``loop`` step (progress, cancel, halving on out-of-memory); the engine's autocast on
    CUDA (:func:`inference.engine.device.autocast`).
    """
    import torch
    import torch.nn.functional as F

    acts = torch.from_numpy(np.ascontiguousarray(activations)).to(x.device, torch.float32)
    n, c = int(acts.shape[0]), int(acts.shape[1])
    flat = acts.flatten(2)
    # bilinear upsampling with aligned corners keeps each map's extremes
    lows, highs = flat.min(dim=-1).values, flat.max(dim=-1).values
    size = tuple(x.shape[-2:])
    weights = np.zeros((n, c), np.float32)
    for i in range(n):
        sample = x[i : i + 1].detach()

        def batch(c0: int, c1: int, i: int = i, sample: torch.Tensor = sample) -> np.ndarray:
            with torch.no_grad(), autocast(x.device):
                up = F.interpolate(
                    acts[i : i + 1, c0:c1], size=size, mode="bilinear", align_corners=True
                )[0]
                lo = lows[i, c0:c1, None, None]
                hi = highs[i, c0:c1, None, None]
                masks = (up - lo) / (hi - lo + 1e-8)
                masked = sample * masks[:, None]
                scores = score_batch(module, masked, [targets[i]] * (c1 - c0))
            if after_batch is not None:
                after_batch()
            return scores

        scores = loop.run(c, batch)
        weights[i] = torch.softmax(torch.from_numpy(scores), dim=0).numpy()
    return weights


class HookCamRunner:
    """A pytorch-grad-cam method on one layer; hooks live from construction to :meth:`close`."""

    def __init__(
        self,
        spec: MethodSpec,
        module: nn.Module,
        layer: nn.Module,
        patch_loop: BatchLoop,
        masked_loop: BatchLoop,
        reshape: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        cls = cam_classes()[spec.name]
        self.spec = spec
        self.module = module
        self.patch_loop = patch_loop
        self.cam: Any = cls(model=module, target_layers=[layer], reshape_transform=reshape)
        if spec.name == "scorecam":
            self.cam.loop = masked_loop

    def __call__(self, x: torch.Tensor, targets: Sequence[Target]) -> np.ndarray:
        import torch

        gradients = self.spec.name not in ("eigencam", "scorecam")

        def one(i0: int, i1: int) -> np.ndarray:
            xi = x[i0:i1].detach()
            if gradients:
                with torch.enable_grad():
                    maps = self.cam(xi.requires_grad_(True), list(targets[i0:i1]))
            else:
                with torch.no_grad():
                    maps = self.cam(xi, list(targets[i0:i1]))
            self.cam.outputs = None  # drop the graph kept for retain_graph
            self.cam.activations_and_grads.clear()
            return np.asarray(maps, np.float32)

        with frozen_parameters(self.module):
            if self.spec.name == "scorecam":  # progress counts masked passes, one patch at a time
                return np.concatenate([one(i, i + 1) for i in range(len(x))])
            return self.patch_loop.run(len(x), one)

    def close(self) -> None:
        self.cam.activations_and_grads.release()
        self.cam.outputs = None
