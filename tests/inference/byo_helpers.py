"""Model folders the bring-your-own-model tests build: random weights, written by the tests.

Nothing is downloaded: timm models are made with ``pretrained=False``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

#: A Vision Transformer small enough for tests: 32 px input, 8 px patches (4 x 4 tokens).
TINY_VIT_ARGS: dict[str, Any] = {
    "img_size": 32,
    "patch_size": 8,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
}


def card(
    architecture: str,
    *,
    patch: int = 64,
    input_size: int | None = None,
    classes: tuple[str, ...] = ("benign", "tumour"),
    slidelens: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A classifier card: ``patch`` px at 1 um/px, resized to ``input_size``."""
    steps: list[dict[str, Any]] = []
    if input_size is not None and input_size != patch:
        steps.append({"name": "Resize", "arguments": {"size": input_size}})
    steps += [
        {"name": "ToTensor"},
        {"name": "Normalize", "arguments": {"mean": [0.5] * 3, "std": [0.25] * 3}},
    ]
    return {
        "spec_version": "1.0",
        "architecture": architecture,
        "num_classes": len(classes),
        "class_names": list(classes),
        "patch_size_pixels": patch,
        "spacing_um_px": 1.0,
        "transform": steps,
        "slidelens": {"task": "classification", **(slidelens or {})},
    }


def save_state(module: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))


def write_folder(folder: Path, card_data: dict[str, Any], module: torch.nn.Module | None) -> Path:
    """``config.json`` plus ``model.safetensors`` of ``module`` (when given)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(card_data), encoding="utf-8")
    if module is not None:
        save_state(module, folder / "model.safetensors")
    return folder


def timm_model(name: str, num_classes: int, seed: int = 0, **args: Any) -> torch.nn.Module:
    import timm

    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, num_classes=num_classes, **args).eval()


def vit_folder(folder: Path, *, seed: int = 0) -> tuple[Path, torch.nn.Module]:
    """A random-weight ``timm:vit_tiny_patch16_224`` classifier: 64 px patches resized to
    its 224 px input; no CAM layer in the card (the family default is used)."""
    module = timm_model("vit_tiny_patch16_224", 2, seed)
    data = card("timm:vit_tiny_patch16_224", patch=64, input_size=224)
    return write_folder(folder, data, module), module


def head_mlp(width: int, hidden: int, classes: int, seed: int = 1) -> torch.nn.Sequential:
    """An MLP head as users save one: ``nn.Sequential(Linear, ReLU, Dropout, Linear)``."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(width, hidden),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.1),
        torch.nn.Linear(hidden, classes),
    ).eval()


def backbone_head_folder(
    folder: Path, *, pool: str = "default", seed: int = 0
) -> tuple[Path, torch.nn.Module, torch.nn.Sequential]:
    """A backbone+head card: a tiny timm ViT feature extractor and an MLP head."""
    backbone = timm_model("vit_tiny_patch16_224", 0, seed, **TINY_VIT_ARGS)
    width = 2 * TINY_VIT_ARGS["embed_dim"] if pool == "cls+mean" else TINY_VIT_ARGS["embed_dim"]
    head = head_mlp(width, 16, 2)
    data = card(
        "backbone+head",
        patch=64,
        input_size=32,
        slidelens={
            "backbone": {
                "architecture": "timm:vit_tiny_patch16_224",
                "weights": "backbone.safetensors",
                "model_args": TINY_VIT_ARGS,
                "pool": pool,
            },
            "head": {"weights": "head.safetensors", "type": "mlp", "activation": "relu"},
        },
    )
    write_folder(folder, data, None)
    save_state(backbone, folder / "backbone.safetensors")
    save_state(head, folder / "head.safetensors")
    return folder, backbone, head


def uint8_patches(count: int, side: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, side, side, 3), dtype=torch.uint8, generator=generator)
