"""The runner for a method: hook-based CAM or hook-free, with its two batch loops.

Contract: :func:`make_runner` checks that the method can run on the module (hook-based
methods need an eager module and a target layer, else
:class:`~inference.explain.methods.MethodUnavailableError` /
:class:`~inference.explain.methods.ExplainError`) and returns a
:class:`~inference.explain.runner_base.MethodRunner`; the caller closes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from inference.explain.cam_runners import HookCamRunner
from inference.explain.hook_free import HookFreeRunner
from inference.explain.methods import (
    TORCHSCRIPT_REASON,
    ExplainError,
    MethodSpec,
    MethodUnavailableError,
    is_torchscript,
)
from inference.explain.progress import BatchLoop, ProgressTracker
from inference.explain.runner_base import MethodRunner, RunSettings

if TYPE_CHECKING:
    import torch
    from torch import nn


def make_runner(
    spec: MethodSpec,
    module: Any,
    layer: nn.Module | None,
    settings: RunSettings,
    tracker: ProgressTracker,
    device: torch.device,
    reshape: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> MethodRunner:
    """The runner for a method.  Progress counts patches, except for Score-CAM (masked
    passes), integrated gradients (path steps) and occlusion (windows).  ``reshape``
    turns the layer's output into ``(N, C, h, w)`` maps (hook-based methods).  Close it."""
    counts_patches = spec.name not in ("scorecam", "integrated-gradients", "occlusion")
    patch_loop = BatchLoop(tracker, settings.patch_batch, device, counts=counts_patches)
    masked_loop = BatchLoop(tracker, settings.masked_batch, device, counts=not counts_patches)
    if spec.hook_based:
        if is_torchscript(module):
            raise MethodUnavailableError(f"{spec.label} {TORCHSCRIPT_REASON}")
        if layer is None:
            raise ExplainError(f"{spec.label} needs a target layer")
        return HookCamRunner(spec, module, layer, patch_loop, masked_loop, reshape)
    return HookFreeRunner(spec, module, settings, patch_loop, masked_loop)
