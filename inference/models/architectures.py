"""Network architectures by name, built with random weights (nothing is ever downloaded).

Names a model card may use in ``architecture``:

- torchvision classifiers: ``resnet18``, ``resnet34``, ``resnet50``, ``efficientnet_b0``,
  ``vgg16_bn``, ``densenet121`` (their state-dict keys match timm's for the ResNets, so
  WSInfer zoo weights for ``resnet34`` load as they are);
- ``small_cnn``: the seed projects' CNN, 3 x [conv 3x3 + ReLU + max-pool 2] with 32/64/128
  filters, then a 128-unit dense layer and dropout.  A global average pool sits between the
  convolutions and the dense layer so one set of weights works at any input size;
- ``unet_small``: a four-level U-Net for segmentation whose logits ``(N, C, H, W)`` have the
  input's resolution (H and W must be multiples of 8);
- ``timm:<name>``: any timm model (``slidelens.model_args`` are its
  ``timm.create_model`` arguments), see :mod:`inference.models.timm_models`;
- ``backbone+head``: a timm backbone and a head trained on its embeddings, named by the
  card's ``slidelens.backbone`` and ``slidelens.head`` and built by
  :mod:`inference.models.composed` (not here).

This module imports torch only inside functions, so reading the name tables is free.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from inference.models.timm_models import TimmBuildError, create_timm_model

if TYPE_CHECKING:
    from torch import nn

Task = Literal["classification", "segmentation"]

#: Prefix for timm model names (``timm:vit_small_patch16_224``).
TIMM_PREFIX = "timm:"
#: The architecture of a card that composes a backbone and a head.
BACKBONE_HEAD = "backbone+head"

#: Every built-in architecture name and the task it serves.
ARCHITECTURES: Mapping[str, Task] = {
    "resnet18": "classification",
    "resnet34": "classification",
    "resnet50": "classification",
    "efficientnet_b0": "classification",
    "vgg16_bn": "classification",
    "densenet121": "classification",
    "small_cnn": "classification",
    "unet_small": "segmentation",
}

#: The layer Grad-CAM hooks by default: the last block with spatial feature maps.
CAM_LAYERS: Mapping[str, str] = {
    "resnet18": "layer4",
    "resnet34": "layer4",
    "resnet50": "layer4",
    "efficientnet_b0": "features.8",
    "vgg16_bn": "features.42",
    "densenet121": "features.norm5",
    "small_cnn": "features.2",
    "unet_small": "dec1",
}

_TORCHVISION = ("resnet18", "resnet34", "resnet50", "efficientnet_b0", "vgg16_bn", "densenet121")


class ArchitectureError(ValueError):
    """An architecture name is unknown, needs a missing package, or does not fit the task."""


def is_known_architecture(name: str) -> bool:
    """True for a built-in name, ``backbone+head`` or any ``timm:<name>`` (whether timm
    has that model is checked only when it is built)."""
    return (
        name in ARCHITECTURES
        or name == BACKBONE_HEAD
        or (name.startswith(TIMM_PREFIX) and len(name) > len(TIMM_PREFIX))
    )


def architecture_task(name: str) -> Task | None:
    """The task an architecture serves; ``None`` for timm and unknown names."""
    if name == BACKBONE_HEAD:
        return "classification"
    return ARCHITECTURES.get(name)


def known_architectures() -> tuple[str, ...]:
    """The built-in names, for error messages and help."""
    return tuple(ARCHITECTURES)


def default_cam_layer(name: str) -> str:
    """The dotted module name Grad-CAM should hook for a built-in architecture.

    Raises :class:`ArchitectureError` for timm or unknown names: the card must then say
    ``slidelens.cam_target_layer`` itself.
    """
    try:
        return CAM_LAYERS[name]
    except KeyError:
        raise ArchitectureError(
            f"no default CAM layer for architecture {name!r}; "
            "set 'cam_target_layer' in the card's slidelens object"
        ) from None


def build_architecture(
    name: str,
    num_classes: int,
    task: Task = "classification",
    model_args: Mapping[str, Any] | None = None,
) -> nn.Module:
    """A freshly initialised network for ``name`` with ``num_classes`` outputs.

    Never downloads weights.  ``model_args`` go to ``timm.create_model`` (timm names
    only).  Raises :class:`ArchitectureError` for an unknown name, a timm model timm
    cannot build, or an architecture that does not serve ``task``.
    """
    if num_classes < 1:
        raise ArchitectureError(f"num_classes must be at least 1 (got {num_classes})")
    if name.startswith(TIMM_PREFIX):
        if task != "classification":
            raise ArchitectureError(f"timm models are classifiers; {name!r} cannot do {task}")
        return build_timm(name, num_classes, model_args)
    if model_args:
        raise ArchitectureError(f"model_args are read only for timm models, not {name!r}")
    if name == BACKBONE_HEAD:
        raise ArchitectureError(
            f"{BACKBONE_HEAD!r} is built from the card's slidelens.backbone and slidelens.head"
        )
    if name not in ARCHITECTURES:
        raise ArchitectureError(
            f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)} "
            f"(or '{TIMM_PREFIX}<name>')"
        )
    if ARCHITECTURES[name] != task:
        raise ArchitectureError(
            f"architecture {name!r} is a {ARCHITECTURES[name]} network; it cannot do {task}"
        )
    if name in _TORCHVISION:
        import torchvision.models

        builder = getattr(torchvision.models, name)
        module: nn.Module = builder(weights=None, num_classes=num_classes)
        return module
    if name == "small_cnn":
        return _small_cnn(num_classes)
    return _unet_class()(num_classes)


def build_timm(
    name: str, num_classes: int, model_args: Mapping[str, Any] | None = None
) -> nn.Module:
    """A ``timm:<name>`` network (``num_classes=0``: a feature extractor) with random
    weights.  Raises :class:`ArchitectureError` naming what timm could not build."""
    if not name.startswith(TIMM_PREFIX) or len(name) == len(TIMM_PREFIX):
        raise ArchitectureError(f"{name!r} is not a '{TIMM_PREFIX}<name>' architecture")
    try:
        return create_timm_model(name[len(TIMM_PREFIX) :], num_classes, model_args)
    except ImportError:
        raise ArchitectureError(f"architecture {name!r} needs the timm package") from None
    except TimmBuildError as exc:
        raise ArchitectureError(str(exc)) from None


def _small_cnn(num_classes: int) -> nn.Module:
    """The seed projects' CNN; CAM layer ``features.2`` is the last conv block."""
    from collections import OrderedDict

    from torch import nn

    def block(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )

    return nn.Sequential(
        OrderedDict(
            features=nn.Sequential(block(3, 32), block(32, 64), block(64, 128)),
            pool=nn.AdaptiveAvgPool2d(1),
            classifier=nn.Sequential(
                nn.Flatten(),
                nn.Linear(128, 128),
                nn.ReLU(),
                nn.Dropout(0.5),
                nn.Linear(128, num_classes),
            ),
        )
    )


@functools.cache
def _unet_class() -> type[nn.Module]:
    """The ``unet_small`` class, defined on first use so torch loads lazily."""
    import torch
    from torch import nn

    def double_conv(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
        )

    class UNetSmall(nn.Module):
        """Encoder 16/32/64, bottleneck 128, mirrored decoder; logits at input size."""

        def __init__(self, num_classes: int, width: int = 16) -> None:
            super().__init__()
            w = width
            self.enc1 = double_conv(3, w)
            self.enc2 = double_conv(w, 2 * w)
            self.enc3 = double_conv(2 * w, 4 * w)
            self.bottleneck = double_conv(4 * w, 8 * w)
            self.pool = nn.MaxPool2d(2)
            self.up3 = nn.ConvTranspose2d(8 * w, 4 * w, 2, stride=2)
            self.dec3 = double_conv(8 * w, 4 * w)
            self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
            self.dec2 = double_conv(4 * w, 2 * w)
            self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
            self.dec1 = double_conv(2 * w, w)
            self.head = nn.Conv2d(w, num_classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            e3 = self.enc3(self.pool(e2))
            b = self.bottleneck(self.pool(e3))
            d3 = self.dec3(torch.cat([self.up3(b), e3], dim=1))
            d2 = self.dec2(torch.cat([self.up2(d3), e2], dim=1))
            d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
            out: torch.Tensor = self.head(d1)
            return out

    return UNetSmall
