"""Learned slide-level heads, built to fit their weights: ABMIL, CLAM and conv-pool.

Every head maps one slide's patches to ``(logits (1, C), maps (K, n))``: ``maps`` are
the per-patch weights the head used (attention for ABMIL and CLAM, summing to one over
the slide's patches per branch; class activation for conv-pool).  Layer sizes are read
from the state dict (:func:`build_head`), so a head needs no architecture settings:

* **ABMIL**, gated attention (Ilse, Tomczak, Welling 2018): ``fc.0`` (optional
  ``Linear`` + ReLU projection), ``attention_V`` / ``attention_U`` (``Linear``, tanh and
  sigmoid gates), ``attention_w`` (``Linear`` to K branches), ``classifier``
  (``Linear`` of the K attention-pooled embeddings).  Input: embeddings ``(n, D)``.
* **CLAM** (Lu et al. 2021), in the official implementation's key names:
  ``attention_net.0`` (``Linear`` + ReLU), ``attention_net.3.attention_a.0`` /
  ``attention_b.0`` / ``attention_c`` (gated attention); CLAM-SB has one branch and
  ``classifiers`` one ``Linear``; CLAM-MB one branch per class and ``classifiers.<c>``
  one ``Linear`` to one logit each (so its attention is per class).  Instance
  classifiers (``instance_classifiers.<c>``) are training-only and may be present.
* **conv-pool**, the whole-image classifier of the mammography work (Shen et al. 2019):
  ``convs.<i>`` (``Conv2d``, ReLU after each), then a global average over the patches
  that exist and ``classifier`` (``Linear``).  Input: the grid of patch outputs or
  embeddings ``(1, D, rows, cols)`` and its mask of patches; its map is the class
  activation of every patch (whose average over the patches is the logit).

torch is imported inside functions only; the classes are made on first use.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn


class HeadShapeError(ValueError):
    """A state dict does not describe the head it should (missing or odd-shaped layers)."""


def _shape(state: Mapping[str, Any], key: str) -> tuple[int, ...]:
    if key not in state:
        raise HeadShapeError(f"no {key!r} in the weights")
    return tuple(int(d) for d in state[key].shape)


def build_head(kind: str, state: Mapping[str, Any]) -> nn.Module:
    """An untrained head of ``kind`` (``abmil``, ``clam``, ``conv_pool``) with the layer
    sizes of ``state``.  Raises :class:`HeadShapeError` when the weights are not such a
    head; loading ``state`` into it is the caller's (it fits by construction)."""
    if kind == "abmil":
        hidden = _shape(state, "fc.0.weight") if "fc.0.weight" in state else None
        attn = _shape(state, "attention_V.weight")
        branches = _shape(state, "attention_w.weight")[0]
        classes = _shape(state, "classifier.weight")[0]
        width = attn[1] if hidden is None else hidden[1]
        return abmil_class()(
            width,
            attn[0],
            classes,
            hidden=None if hidden is None else hidden[0],
            branches=branches,
        )
    if kind == "clam":
        fc = _shape(state, "attention_net.0.weight")
        attn = _shape(state, "attention_net.3.attention_a.0.weight")
        branches = _shape(state, "attention_net.3.attention_c.weight")[0]
        if "classifiers.weight" in state:
            classes = _shape(state, "classifiers.weight")[0]
            multi = False
        else:
            classes = len({k.split(".")[1] for k in state if re.match(r"classifiers\.\d+\.", k)})
            multi = True
            if classes == 0:
                raise HeadShapeError("no 'classifiers' layer in the weights")
        instance = any(k.startswith("instance_classifiers.") for k in state)
        return clam_class()(
            fc[1],
            fc[0],
            attn[0],
            classes,
            multi_branch=multi,
            branches=branches,
            instance_classifiers=instance,
        )
    if kind == "conv_pool":
        convs = sorted({int(k.split(".")[1]) for k in state if re.match(r"convs\.\d+\.weight$", k)})
        if not convs or convs != list(range(len(convs))):
            raise HeadShapeError("no 'convs.0.weight' ... layers in the weights")
        shapes = [_shape(state, f"convs.{i}.weight") for i in convs]
        if any(len(s) != 4 for s in shapes):
            raise HeadShapeError("conv-pool layers must be Conv2d weights (out, in, kh, kw)")
        classes = _shape(state, "classifier.weight")[0]
        layers = [(s[1], s[0], s[2]) for s in shapes]
        return conv_pool_class()(layers, classes)
    raise HeadShapeError(f"unknown head type {kind!r}")


@functools.cache
def abmil_class() -> type[nn.Module]:
    """The gated-attention ABMIL module class (see the module docstring)."""
    import torch
    from torch import nn

    class GatedABMIL(nn.Module):
        """``forward(h (n, D)) -> (logits (1, C), attention (K, n))``."""

        def __init__(
            self,
            width: int,
            attention_dim: int,
            num_classes: int,
            *,
            hidden: int | None = None,
            branches: int = 1,
            dropout: float = 0.0,
        ) -> None:
            super().__init__()
            features = width if hidden is None else hidden
            self.fc = (
                nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout))
                if hidden is not None
                else None
            )
            self.attention_V = nn.Linear(features, attention_dim)
            self.attention_U = nn.Linear(features, attention_dim)
            self.attention_w = nn.Linear(attention_dim, branches)
            self.classifier = nn.Linear(features * branches, num_classes)

        def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            if self.fc is not None:
                h = self.fc(h)
            gate = torch.tanh(self.attention_V(h)) * torch.sigmoid(self.attention_U(h))
            attention = torch.softmax(self.attention_w(gate).transpose(0, 1), dim=1)  # (K, n)
            pooled = (attention @ h).reshape(1, -1)  # (1, K * features)
            return self.classifier(pooled), attention

    return GatedABMIL


@functools.cache
def clam_class() -> type[nn.Module]:
    """The CLAM module class (SB or MB, see the module docstring)."""
    import torch
    from torch import nn

    class GatedAttention(nn.Module):
        def __init__(self, width: int, dim: int, branches: int, dropout: float) -> None:
            super().__init__()
            self.attention_a = nn.Sequential(nn.Linear(width, dim), nn.Tanh(), nn.Dropout(dropout))
            self.attention_b = nn.Sequential(
                nn.Linear(width, dim), nn.Sigmoid(), nn.Dropout(dropout)
            )
            self.attention_c = nn.Linear(dim, branches)

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.attention_c(self.attention_a(h) * self.attention_b(h))
            return out

    class CLAM(nn.Module):
        """``forward(h (n, D)) -> (logits (1, C), attention (K, n))``: K = 1 for CLAM-SB,
        C for CLAM-MB."""

        def __init__(
            self,
            width: int,
            hidden: int,
            attention_dim: int,
            num_classes: int,
            *,
            multi_branch: bool = False,
            branches: int = 1,
            instance_classifiers: bool = False,
            dropout: float = 0.0,
        ) -> None:
            super().__init__()
            self.multi_branch = multi_branch
            self.attention_net = nn.Sequential(
                nn.Linear(width, hidden),
                nn.ReLU(),
                nn.Dropout(dropout),
                GatedAttention(hidden, attention_dim, branches, dropout),
            )
            if multi_branch:
                self.classifiers: nn.Module = nn.ModuleList(
                    nn.Linear(hidden, 1) for _ in range(num_classes)
                )
            else:
                self.classifiers = nn.Linear(hidden, num_classes)
            if instance_classifiers:
                self.instance_classifiers = nn.ModuleList(
                    nn.Linear(hidden, 2) for _ in range(num_classes)
                )

        def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.attention_net[:3](h)
            raw = self.attention_net[3](features)  # (n, K)
            attention = torch.softmax(raw.transpose(0, 1), dim=1)  # (K, n)
            pooled = attention @ features  # (K, hidden)
            if self.multi_branch:
                assert isinstance(self.classifiers, nn.ModuleList)
                logits = torch.cat(
                    [clf(pooled[c : c + 1]) for c, clf in enumerate(self.classifiers)], dim=1
                )
            else:
                logits = self.classifiers(pooled[:1])
            return logits, attention

    return CLAM


@functools.cache
def conv_pool_class() -> type[nn.Module]:
    """The conv-pool module class (see the module docstring)."""
    import torch
    from torch import nn

    class ConvPool(nn.Module):
        """``forward(grid (1, D, R, Q), mask (1, 1, R, Q)) -> (logits (1, C), cam (C, n))``
        over the ``n`` patches where ``mask`` is 1 (row by row)."""

        def __init__(self, layers: list[tuple[int, int, int]], num_classes: int) -> None:
            super().__init__()
            self.convs = nn.ModuleList(
                nn.Conv2d(c_in, c_out, k, padding=k // 2) for c_in, c_out, k in layers
            )
            self.classifier = nn.Linear(layers[-1][1], num_classes)

        def forward(
            self, grid: torch.Tensor, mask: torch.Tensor
        ) -> tuple[torch.Tensor, torch.Tensor]:
            x = grid * mask
            for conv in self.convs:
                x = torch.relu(conv(x)) * mask
            cells = x[0][:, mask[0, 0] > 0].transpose(0, 1)  # (n, features)
            cam = self.classifier(cells).transpose(0, 1)  # (C, n): per-patch logits
            return cam.mean(dim=1, keepdim=True).transpose(0, 1), cam

    return ConvPool
