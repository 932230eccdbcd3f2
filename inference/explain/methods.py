"""Explanation methods by name, and the errors every explanation may raise.

Contract: :data:`METHODS` lists every method (:class:`MethodSpec`) in display order;
:func:`method_spec` finds one by a forgiving name (``Grad-CAM`` is ``gradcam``).
Hook-based methods (pytorch-grad-cam's CAMs: :mod:`inference.explain.cam_runners`) need
forward hooks on a target layer, which TorchScript programs refuse
(:data:`TORCHSCRIPT_REASON`) and ONNX models, run outside torch, lack
(:data:`ONNX_HOOK_REASON`); hook-free ones (:mod:`inference.explain.hook_free`) need
only whole-model passes, and those with ``uses_gradients`` need gradients, which ONNX
Runtime does not compute (:data:`ONNX_GRADIENT_REASON`).  :class:`ExplainError` and its
kinds name the cause of a failure and what to do; :class:`ExplainCancelled` is raised
when the caller cancels.
torch is imported inside functions only; nothing here prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ExplainError(Exception):
    """An explanation cannot be made; ``str(exc)`` names the cause and what to do."""


class MethodUnavailableError(ExplainError):
    """The method cannot explain this model (e.g. a hook-based CAM on TorchScript)."""


class LayerNotFoundError(ExplainError):
    """The target layer is not a module of the model; the message lists nearby names."""


class ExplainCancelled(Exception):
    """The caller set the cancel event; the explanation stopped between two batches."""


# -- the methods -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodSpec:
    """One explanation method.

    ``hook_based``: needs forward hooks on a target layer (not possible on TorchScript).
    ``class_specific``: the map changes with the target class (Eigen-CAM's does not).
    ``slow``: many forward passes per patch; report progress and allow cancel.
    ``uses_gradients``: needs gradients through the model (all but Eigen-CAM, Score-CAM
    and occlusion).
    """

    name: str
    label: str
    hook_based: bool
    class_specific: bool
    slow: bool
    description: str
    uses_gradients: bool = True


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("gradcam", "Grad-CAM", True, True, False, "mean gradient per channel"),
        MethodSpec("gradcam++", "Grad-CAM++", True, True, False, "higher-order gradient weights"),
        MethodSpec("xgradcam", "XGrad-CAM", True, True, False, "activation-weighted gradients"),
        MethodSpec("layercam", "Layer-CAM", True, True, False, "positive gradients per location"),
        MethodSpec("hirescam", "HiRes-CAM", True, True, False, "gradient times activation"),
        MethodSpec(
            "eigencam",
            "Eigen-CAM",
            True,
            False,
            False,
            "first principal component (any class)",
            uses_gradients=False,
        ),
        MethodSpec(
            "scorecam",
            "Score-CAM",
            True,
            True,
            True,
            "score of the input masked by each channel",
            uses_gradients=False,
        ),
        MethodSpec("saliency", "Saliency", False, True, False, "input gradient magnitude"),
        MethodSpec(
            "integrated-gradients",
            "Integrated gradients",
            False,
            True,
            True,
            "gradients along a path from blank glass",
        ),
        MethodSpec(
            "occlusion",
            "Occlusion",
            False,
            True,
            True,
            "score drop when blank glass hides a window",
            uses_gradients=False,
        ),
    )
}

HOOK_FREE_METHODS: tuple[str, ...] = tuple(n for n, s in METHODS.items() if not s.hook_based)
HOOK_METHODS: tuple[str, ...] = tuple(n for n, s in METHODS.items() if s.hook_based)

_ALIASES = {"ig": "integrated-gradients", "integratedgradients": "integrated-gradients"}


def method_spec(name: str) -> MethodSpec:
    """The method called ``name`` (case, ``-`` and ``_`` ignored: ``Grad-CAM`` is ``gradcam``).

    Raises :class:`ExplainError` listing the known names.
    """
    key = name.strip().lower()
    if key in METHODS:
        return METHODS[key]
    squashed = key.replace("-", "").replace("_", "").replace(" ", "")
    for known in METHODS:
        if known.replace("-", "") == squashed:
            return METHODS[known]
    if squashed in _ALIASES:
        return METHODS[_ALIASES[squashed]]
    raise ExplainError(f"unknown explanation method {name!r}; known: {', '.join(METHODS)}")


TORCHSCRIPT_REASON = (
    "needs forward hooks on a layer, and TorchScript models accept none "
    "(register_forward_hook is not supported on ScriptModules); "
    f"use {', '.join(HOOK_FREE_METHODS)}"
)


ONNX_HOOK_REASON = (
    "needs forward hooks on a layer, and an ONNX model runs in ONNX Runtime, outside "
    "torch, with no layers to hook; put the eager weights (model.safetensors) in the "
    "same folder, or use occlusion"
)

ONNX_GRADIENT_REASON = (
    "needs gradients through the model, which ONNX Runtime does not compute; put the "
    "eager weights (model.safetensors) in the same folder, or use occlusion"
)


def is_torchscript(module: Any) -> bool:
    """Whether a module is a TorchScript program (which accepts no hooks)."""
    import torch

    return isinstance(module, torch.jit.ScriptModule)
