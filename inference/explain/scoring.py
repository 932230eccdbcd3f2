"""The model's plain forward passes in an explanation: its device, inputs, class scores.

Contract: :func:`device_of` is where the model's parameters live; :func:`model_inputs`
preprocesses uint8 RGB patches into float32 inputs on that device; :func:`class_scores`
gives a batch's class probabilities (in inference mode) and each patch's weight in the
mean over the canvas (1 per patch for a classifier; for a segmentation network the
mean over the patch's pixels inside the region, weighted by their count).  torch is
imported inside functions only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from inference.explain.progress import ProgressTracker

if TYPE_CHECKING:
    import torch

    from inference.engine.job import ModelLike


def device_of(model: ModelLike) -> torch.device:
    """The device of the model's parameters (its ``device`` when it has none)."""
    import torch

    try:
        return next(iter(model.module.parameters())).device
    except StopIteration:
        return torch.device(str(model.device))


def model_inputs(model: ModelLike, rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(n, 3, S, S)`` float32 model inputs on ``device`` from ``(n, H, W, 3)`` uint8 RGB."""
    return model.preprocess(rgb).to(device).float()


def class_scores(
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
