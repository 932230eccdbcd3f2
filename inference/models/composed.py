"""A ``backbone+head`` card built into one module: a timm backbone and a head on its embeddings.

The card names the backbone (``slidelens.backbone``: a ``timm:<name>``, its weights file
in the folder, optional ``model_args`` and ``pool``) and the head (``slidelens.head``: a
weights file holding one ``Linear`` layer, or an MLP saved from ``nn.Sequential`` as
``0.weight``, ``2.weight``...; ``type`` and ``activation``).  The head's layer sizes are
read from its weights and checked against the backbone's embedding width and the card's
``num_classes``.  :func:`build_backbone_head` returns a :class:`torch.nn.Module`
(``backbone``, ``head``) that maps images to logits, so the engine, CAMs and export
treat it like any model; its ``cam_layer`` is the backbone's default CAM layer.

Embedding (``pool``): ``default`` is the backbone's own output with ``num_classes=0``
(timm's pooling); ``cls`` the class token, ``mean`` the mean of the patch tokens and
``cls+mean`` both concatenated (Virchow's embedding), from ``forward_features``.
Every error is a :class:`~inference.models.errors.ModelLoadError` naming the card or
the weights file.  torch is imported inside functions only.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from inference.models.architectures import ArchitectureError, build_timm
from inference.models.card import ModelCard
from inference.models.errors import ModelLoadError
from inference.models.timm_models import timm_cam_layer
from inference.models.weights import fit_state_dict, load_state_dict_file

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Pooling modes that read the token sequence (the others use the backbone's output).
TOKEN_POOLS = ("cls", "mean", "cls+mean")
_HEAD_PREFIXES = ("head.", "classifier.", "fc.", "linear.", "mlp.")


def backbone_head_files(card: ModelCard) -> tuple[Path, Path]:
    """The backbone's and the head's weights files (which may not exist)."""
    return card.folder / str(card.backbone["weights"]), card.folder / str(card.head["weights"])


def build_backbone_head(card: ModelCard) -> nn.Module:
    """The card's backbone and head, weights loaded, as one module (see the docstring)."""
    backbone_path, head_path = backbone_head_files(card)
    spec = card.backbone
    pool = str(spec.get("pool", "default"))
    where = f"{card.config_path}: field 'slidelens.backbone"
    try:
        backbone = build_timm(str(spec["architecture"]), 0, spec.get("model_args"))
    except ArchitectureError as exc:
        raise ModelLoadError(f"{where}.architecture': {exc}", path=card.config_path) from exc
    classifier = _classifier_name(backbone)
    fit_state_dict(
        backbone,
        load_state_dict_file(backbone_path),
        backbone_path,
        f"backbone {spec['architecture']!r}",
        "Check slidelens.backbone.architecture and model_args in config.json.",
        ignore=(f"{classifier}.",) if classifier else (),
    )
    if pool in TOKEN_POOLS and not hasattr(backbone, "forward_features"):
        raise ModelLoadError(
            f"{where}.pool': {pool!r} needs a token backbone (a ViT); use 'default'",
            path=card.config_path,
        )
    width = _embedding_width(backbone, pool, card)
    head = _build_head(card, head_path, width)
    module = _composed_class()(backbone, head, pool)
    module.eval()
    return module


def _classifier_name(backbone: nn.Module) -> str | None:
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    name = cfg.get("classifier") if isinstance(cfg, dict) else None
    return str(name) if isinstance(name, str) else None


def _embedding_width(backbone: nn.Module, pool: str, card: ModelCard) -> int:
    width = getattr(backbone, "num_features", None)
    if isinstance(width, int) and width > 0:
        return 2 * width if pool == "cls+mean" else width
    import torch

    with torch.no_grad():  # a backbone that does not say: measure it once
        x = torch.zeros(1, 3, card.input_size, card.input_size)
        return int(_embed(backbone.eval(), x, pool).shape[-1])


def _embed(backbone: nn.Module, x: torch.Tensor, pool: str) -> torch.Tensor:
    import torch

    if pool == "default":
        out: torch.Tensor = backbone(x)
        return out.flatten(1)
    tokens: torch.Tensor = cast(Any, backbone).forward_features(x)
    prefix = int(getattr(backbone, "num_prefix_tokens", 1))
    cls, patches = tokens[:, 0], tokens[:, prefix:].mean(dim=1)
    if pool == "cls":
        return cls
    if pool == "mean":
        return patches
    return torch.cat([cls, patches], dim=-1)


def _head_layers(state: dict[str, Any], path: Path) -> dict[int, tuple[int, int]]:
    """``{index: (in, out)}`` of the Linear layers a head's weights hold."""
    if set(state) <= {"weight", "bias"}:
        return {0: (int(state["weight"].shape[1]), int(state["weight"].shape[0]))}
    layers: dict[int, tuple[int, int]] = {}
    for key, value in state.items():
        index, _, name = key.partition(".")
        if not index.isdigit() or name not in ("weight", "bias"):
            raise ModelLoadError(
                f"{path}: key {key!r} is not a head layer; save a Linear layer "
                "(weight, bias) or an nn.Sequential of Linear layers (0.weight, 2.weight...)",
                path=path,
            )
        if name == "weight":
            if value.ndim != 2:
                raise ModelLoadError(
                    f"{path}: {key} has shape {tuple(value.shape)}; a head holds Linear "
                    "layers only (2-d weights)",
                    path=path,
                )
            layers[int(index)] = (int(value.shape[1]), int(value.shape[0]))
    return dict(sorted(layers.items()))


def _head_state(path: Path) -> tuple[dict[str, Any], dict[int, tuple[int, int]]]:
    """A head's state dict with ``nn.Sequential`` keys, and its Linear layers' sizes."""
    state = load_state_dict_file(path)
    for prefix in _HEAD_PREFIXES:  # a head saved from inside a bigger module
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    if set(state) <= {"weight", "bias"} and "weight" in state:
        state = {f"0.{k}": v for k, v in state.items()}
    layers = _head_layers(state, path)
    if not layers:
        raise ModelLoadError(f"{path}: holds no Linear layer weights", path=path)
    return state, layers


def head_outputs(path: Path) -> int:
    """How many outputs a head's weights give (its last Linear layer's), read as data."""
    layers = _head_state(path)[1]
    return layers[max(layers)][1]


def _build_head(card: ModelCard, path: Path, width: int) -> nn.Module:
    from torch import nn

    spec = card.head
    state, layers = _head_state(path)
    kind = spec.get("type", "linear" if len(layers) == 1 else "mlp")
    field = f"{card.config_path}: field 'slidelens.head"
    if (kind == "linear") != (len(layers) == 1):
        raise ModelLoadError(
            f"{field}.type': is {kind!r} but {path.name} holds {len(layers)} Linear layers",
            path=card.config_path,
        )
    fix = "Check slidelens.backbone (architecture, pool) and the head file."
    sizes = list(layers.values())
    if sizes[0][0] != width:
        raise ModelLoadError(
            f"{path}: the head takes {sizes[0][0]} features but the backbone's embedding "
            f"has {width}. {fix}",
            path=path,
        )
    for (_, out_prev), (in_next, _) in itertools.pairwise(sizes):
        if out_prev != in_next:
            raise ModelLoadError(
                f"{path}: head layers do not chain: {out_prev} outputs into {in_next} inputs",
                path=path,
            )
    if sizes[-1][1] != card.num_classes:
        raise ModelLoadError(
            f"{path}: the head has {sizes[-1][1]} outputs but the card has num_classes "
            f"{card.num_classes}; make them agree",
            path=path,
        )
    activation = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}[
        str(spec.get("activation", "relu"))
    ]
    slots: list[nn.Module] = []
    last = max(layers)
    for i in range(last + 1):
        if i in layers:
            has_bias = f"{i}.bias" in state
            slots.append(nn.Linear(*layers[i], bias=has_bias))
        elif i - 1 in layers:  # the slot after a Linear: its activation
            slots.append(activation())
        else:  # dropout and the like: nothing at inference
            slots.append(nn.Identity())
    head = nn.Sequential(*slots)
    fit_state_dict(head, state, path, f"a {kind} head", fix)
    return head


@functools.cache
def _composed_class() -> type[nn.Module]:
    """The composed module's class, defined on first use so torch loads lazily."""
    from torch import nn

    class BackboneWithHead(nn.Module):
        """Images to logits: ``head(embedding(backbone(x)))``."""

        def __init__(self, backbone: nn.Module, head: nn.Module, pool: str) -> None:
            super().__init__()
            self.backbone = backbone
            self.head = head
            self.pool = pool
            inner = timm_cam_layer(backbone)
            #: The default CAM layer (``None`` when the backbone's family has none).
            self.cam_layer = f"backbone.{inner}" if inner else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.head(_embed(self.backbone, x, self.pool))
            return out

    return BackboneWithHead
