"""Small models for engine and explanation tests: hand-built ``ModelLike`` doubles and real
model folders with random weights.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class TinyCard:
    name: str = "tiny"
    class_names: tuple[str, ...] = ("benign", "tumour")
    patch_size_pixels: int = 32
    spacing_um_px: float = 0.5
    task: str = "classification"
    threshold: float = 0.5


class TinyModel:
    """A hand-built model object: the ``ModelLike`` shape without a model folder."""

    def __init__(self, card: TinyCard | None = None, *, seed: int = 0) -> None:
        self.card = card or TinyCard()
        torch.manual_seed(seed)
        c = len(self.card.class_names)
        if self.card.task == "segmentation":
            self.module: torch.nn.Module = torch.nn.Conv2d(3, c, 3, padding=1)
        else:
            self.module = torch.nn.Sequential(
                torch.nn.Conv2d(3, 4, 3, stride=2),
                torch.nn.ReLU(),
                torch.nn.AdaptiveAvgPool2d(1),
                torch.nn.Flatten(),
                torch.nn.Linear(4, c),
            )
        self.module.eval()
        self.sha256 = "ab" * 32
        self.device = "cpu"

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        return self.to_model_input(torch.from_numpy(np.ascontiguousarray(rgb)))

    def to_model_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2).float() / 255.0
        return (x - 0.5) / 0.25

    def postprocess(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)

    def direct(self, rgb: np.ndarray) -> np.ndarray:
        """The reference: one patch, preprocess, forward, postprocess."""
        with torch.no_grad():
            out = self.postprocess(self.module(self.preprocess(rgb[None])))
        return out[0].numpy()


def write_model_folder(folder: Path, *, seed: int = 0) -> Path:
    """A small_cnn classifier card and random weights: 64 px patches at 1 um/px."""
    from safetensors.torch import save_file

    from inference.models.architectures import build_architecture

    folder.mkdir(parents=True)
    card = {
        "spec_version": "1.0",
        "architecture": "small_cnn",
        "num_classes": 2,
        "class_names": ["benign", "tumour"],
        "patch_size_pixels": 64,
        "spacing_um_px": 1.0,
        "transform": [
            {"name": "Resize", "arguments": {"size": 64}},
            {"name": "ToTensor"},
            {"name": "Normalize", "arguments": {"mean": [0.5] * 3, "std": [0.25] * 3}},
        ],
        "slidelens": {"task": "classification"},
    }
    (folder / "config.json").write_text(json.dumps(card))
    torch.manual_seed(seed)
    module = build_architecture("small_cnn", 2)
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    return folder


def model_folder(
    folder: Path,
    *,
    architecture: str = "small_cnn",
    task: str = "classification",
    patch: int = 64,
    spacing: float = 1.0,
    seed: int = 0,
    class_names: tuple[str, ...] = ("benign", "tumour"),
    torchscript: bool = False,
) -> Path:
    """A model folder: card + random weights (safetensors, or a TorchScript program)."""
    from safetensors.torch import save_file

    from inference.models.architectures import build_architecture

    folder.mkdir(parents=True)
    card = {
        "spec_version": "1.0",
        "architecture": "some_zoo_net" if torchscript else architecture,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "patch_size_pixels": patch,
        "spacing_um_px": spacing,
        "transform": [
            {"name": "ToTensor"},
            {"name": "Normalize", "arguments": {"mean": [0.5] * 3, "std": [0.25] * 3}},
        ],
        "slidelens": {"task": task},
    }
    (folder / "config.json").write_text(json.dumps(card))
    torch.manual_seed(seed)
    module = build_architecture(architecture, len(class_names), task)  # type: ignore[arg-type]
    if torchscript:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit is deprecated upstream
            torch.jit.script(module.eval()).save(str(folder / "torchscript_model.pt"))
    else:
        state = {k: v.contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"))
    return folder


@dataclass(frozen=True)
class DarkCard:
    name: str = "darkness"
    class_names: tuple[str, ...] = ("dark", "light")
    patch_size_pixels: int = 32
    spacing_um_px: float = 1.0
    task: str = "classification"
    cam_target_layer: str = "features"
    input_size: int = 32


class ConstantShift(torch.nn.Module):
    def __init__(self, shift: float) -> None:
        super().__init__()
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


class DarknessModel:
    """A model whose class-0 logit is the mean darkness ``1 - mean(rgb)`` of the patch.

    ``features`` is a 1x1 convolution computing darkness per pixel (then ReLU), so the
    Grad-CAM of class 0 is proportional to the darkness of each pixel: a dark patch has a
    stronger CAM than a pale one, whatever the normalisation of each patch would say.
    """

    def __init__(self) -> None:
        self.card = DarkCard()
        conv = torch.nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            conv.weight.fill_(-1.0 / 3.0)
        head = torch.nn.Linear(1, 2)
        with torch.no_grad():
            head.weight.copy_(torch.tensor([[4.0], [-4.0]]))
            head.bias.zero_()
        self.module = torch.nn.Sequential()
        one = ConstantShift(1.0)  # darkness = 1 - mean(rgb)
        self.module.add_module("features", torch.nn.Sequential(conv, one, torch.nn.ReLU()))
        self.module.add_module("pool", torch.nn.AdaptiveAvgPool2d(1))
        self.module.add_module("flat", torch.nn.Flatten())
        self.module.add_module("head", head)
        self.module.eval()
        self.sha256 = "da" * 32
        self.device = "cpu"

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        return self.to_model_input(torch.from_numpy(np.ascontiguousarray(rgb)))

    def to_model_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2).float() / 255.0

    def postprocess(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)
