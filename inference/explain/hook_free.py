"""Hook-free methods: input-gradient saliency, integrated gradients, occlusion.

Contract: :class:`HookFreeRunner` needs only gradients or forward passes of the whole
model, so it also explains TorchScript programs (which accept no hooks).  ``saliency``
is the input gradient's magnitude; ``integrated-gradients`` integrates gradients from a
blank-glass baseline; ``occlusion`` hides blank-glass windows and records the score
drop.  Maps are at the model's input resolution, non-negative, never scaled.  Forward
passes without gradients (occlusion) run under the engine's mixed-precision policy
(:func:`inference.engine.device.autocast`).  torch is imported inside functions only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.engine.device import autocast
from inference.explain.methods import MethodSpec
from inference.explain.progress import BatchLoop
from inference.explain.runner_base import (
    RunSettings,
    frozen_parameters,
    occlusion_windows,
    score_batch,
)
from inference.explain.targets import Target

if TYPE_CHECKING:
    import torch


class HookFreeRunner:
    """Saliency, integrated gradients or occlusion: whole-model passes only, no hooks."""

    def __init__(
        self,
        spec: MethodSpec,
        module: Any,
        settings: RunSettings,
        patch_loop: BatchLoop,
        masked_loop: BatchLoop,
    ) -> None:
        if spec.name != "saliency" and settings.baseline is None:
            raise ValueError(f"{spec.name} needs a baseline input")
        self.spec = spec
        self.module = module
        self.settings = settings
        self.patch_loop = patch_loop
        self.masked_loop = masked_loop

    def __call__(self, x: torch.Tensor, targets: Sequence[Target]) -> np.ndarray:
        with frozen_parameters(self.module):
            if self.spec.name == "saliency":
                return self.patch_loop.run(
                    len(x), lambda i0, i1: self._saliency(x, targets, i0, i1)
                )
            one = self._integrated if self.spec.name == "integrated-gradients" else self._occlusion
            return np.stack([one(x[i : i + 1], targets[i]) for i in range(len(x))])

    def _saliency(self, x: torch.Tensor, targets: Sequence[Target], i0: int, i1: int) -> np.ndarray:
        import torch

        with torch.enable_grad():
            xi = x[i0:i1].detach().clone().requires_grad_(True)
            out = self.module(xi)
            loss = torch.stack([t(o) for t, o in zip(targets[i0:i1], out, strict=True)]).sum()
            (grad,) = torch.autograd.grad(loss, xi)
        return grad.abs().amax(dim=1).cpu().numpy().astype(np.float32)

    def _integrated(self, x: torch.Tensor, target: Target) -> np.ndarray:
        """Midpoint Riemann sum of gradients from the baseline to ``x``; map =
        positive part of the channel-summed attribution ``(x - b) * mean gradient``."""
        import torch

        base = self.settings.baseline
        assert base is not None
        steps = self.settings.ig_steps
        alphas = (torch.arange(steps, dtype=torch.float32, device=x.device) + 0.5) / steps
        delta = (x - base).detach()

        def batch(s0: int, s1: int) -> np.ndarray:
            with torch.enable_grad():
                a = alphas[s0:s1, None, None, None]
                xs = (base + a * delta).detach().requires_grad_(True)
                out = self.module(xs)
                loss = torch.stack([target(o) for o in out]).sum()
                (grad,) = torch.autograd.grad(loss, xs)
            return grad.sum(dim=0, keepdim=True).cpu().numpy()

        mean_grad = self.masked_loop.run(steps, batch).sum(axis=0) / steps
        attribution = (delta[0].cpu().numpy() * mean_grad).sum(axis=0)
        return np.maximum(attribution, 0).astype(np.float32)

    def _occlusion(self, x: torch.Tensor, target: Target) -> np.ndarray:
        """Mean over covering windows of the (positive) drop of the target's score when
        the window shows blank glass."""
        import torch

        base = self.settings.baseline
        assert base is not None
        size = int(x.shape[-1])
        corners, count = occlusion_windows(size, self.settings.occlusion_grid)
        win = max(1, math.ceil(size / self.settings.occlusion_grid))
        with torch.no_grad(), autocast(x.device):
            reference = float(score_batch(self.module, x, [target])[0])

        def batch(k0: int, k1: int) -> np.ndarray:
            with torch.no_grad(), autocast(x.device):
                xs = x.detach().repeat(k1 - k0, 1, 1, 1)
                for j, (y, xx) in enumerate(corners[k0:k1]):
                    xs[j, :, y : y + win, xx : xx + win] = base[0, :, y : y + win, xx : xx + win]
                return score_batch(self.module, xs, [target] * (k1 - k0))

        drops = np.maximum(reference - self.masked_loop.run(count, batch), 0.0)
        total = np.zeros((size, size), np.float64)
        cover = np.zeros((size, size), np.float64)
        for (y, xx), drop in zip(corners, drops, strict=True):
            total[y : y + win, xx : xx + win] += drop
            cover[y : y + win, xx : xx + win] += 1.0
        return (total / np.maximum(cover, 1.0)).astype(np.float32)

    def close(self) -> None:
        pass
