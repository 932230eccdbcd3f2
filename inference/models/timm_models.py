"""timm networks: built offline from a name and JSON arguments, and their default CAM layer.

Contract: :func:`create_timm_model` builds ``timm.create_model(name, pretrained=False,
num_classes=n, **model_args)`` (``num_classes=0``: a feature extractor whose output is
the pooled embedding); nothing is ever downloaded, weights come from the model folder.
``model_args`` are JSON, so a layer class (Virchow's ``mlp_layer``, ``act_layer``) is
named by a string from :data:`LAYER_CLASSES`, never imported by an arbitrary dotted
name.  :func:`model_args_problems` checks arguments without importing timm (for card
validation).  :func:`timm_cam_layer` is the layer Grad-CAM hooks by default for the
families in :data:`TIMM_CAM_LAYERS` (the layer pytorch-grad-cam's tutorials use: for a
ViT the last block's ``norm1``, whose patch tokens still carry the class evidence).
timm and torch are imported inside functions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

#: Default CAM layer by timm model class (dotted path; negative indices count from the
#: end, so one entry fits every depth).
TIMM_CAM_LAYERS: Mapping[str, str] = {
    "VisionTransformer": "blocks.-1.norm1",
    "Eva": "blocks.-1.norm1",
    "Beit": "blocks.-1.norm1",
    "SwinTransformer": "layers.-1.blocks.-1.norm1",
    "SwinTransformerV2": "layers.-1.blocks.-1.norm1",
    "ResNet": "layer4",
    "ConvNeXt": "stages.-1",
    "EfficientNet": "bn2",
}

#: Layer classes a ``model_args`` string may name: (module, attribute).
LAYER_CLASSES: Mapping[str, tuple[str, str]] = {
    "timm.layers.SwiGLUPacked": ("timm.layers", "SwiGLUPacked"),
    "timm.layers.SwiGLU": ("timm.layers", "SwiGLU"),
    "timm.layers.GluMlp": ("timm.layers", "GluMlp"),
    "timm.layers.Mlp": ("timm.layers", "Mlp"),
    "torch.nn.SiLU": ("torch.nn", "SiLU"),
    "torch.nn.GELU": ("torch.nn", "GELU"),
    "torch.nn.ReLU": ("torch.nn", "ReLU"),
}

#: Keys that would make timm fetch or read something, or that the card states itself.
FORBIDDEN_ARGS: Mapping[str, str] = {
    "pretrained": "weights come from the model folder, never from a download",
    "pretrained_cfg": "weights come from the model folder, never from a download",
    "pretrained_cfg_overlay": "weights come from the model folder, never from a download",
    "checkpoint_path": "name the weights file in the card instead",
    "cache_dir": "nothing is downloaded",
    "num_classes": "the card's num_classes (or the head) sets it",
}


def model_args_problems(args: Mapping[str, Any]) -> list[str]:
    """What is wrong with ``model_args`` (empty when fine); no timm import."""
    problems = []
    for key, value in args.items():
        if key in FORBIDDEN_ARGS:
            problems.append(f"'{key}' is not allowed: {FORBIDDEN_ARGS[key]}")
        elif (
            key.endswith(("_layer", "_cls"))
            and isinstance(value, str)
            and value not in LAYER_CLASSES
        ):
            problems.append(
                f"'{key}': unknown layer class {value!r}; known: {', '.join(LAYER_CLASSES)}"
            )
    return problems


def _resolved_args(args: Mapping[str, Any]) -> dict[str, Any]:
    import importlib

    out = dict(args)
    for key, value in args.items():
        if isinstance(value, str) and value in LAYER_CLASSES:
            module, attr = LAYER_CLASSES[value]
            out[key] = getattr(importlib.import_module(module), attr)
    return out


class TimmBuildError(ValueError):
    """timm cannot build the named model with these arguments; the message says why."""


def create_timm_model(
    name: str, num_classes: int, model_args: Mapping[str, Any] | None = None
) -> nn.Module:
    """A randomly initialised timm model (``num_classes=0``: pooled embeddings out).

    Raises :class:`TimmBuildError` for an unknown name, forbidden or unknown arguments,
    or arguments timm rejects.
    """
    import timm

    args = dict(model_args or {})
    problems = model_args_problems(args)
    if problems:
        raise TimmBuildError(f"timm model {name!r}: " + "; ".join(problems))
    if not timm.is_model(name):
        raise TimmBuildError(f"timm has no model named {name!r} (timm {timm.__version__})")
    try:
        module: nn.Module = timm.create_model(
            name, pretrained=False, num_classes=num_classes, **_resolved_args(args)
        )
    except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
        raise TimmBuildError(
            f"timm cannot build {name!r} with model_args {args}: {type(exc).__name__}: {exc}"
        ) from exc
    return module


def timm_cam_layer(module: nn.Module) -> str | None:
    """The default CAM layer of a timm model by its class (``None`` for other families)."""
    return TIMM_CAM_LAYERS.get(type(module).__name__)
