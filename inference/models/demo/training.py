"""Training loops of the demo models, on patches from :mod:`inference.models.demo.data`.

The network input is made by the model's own :meth:`LoadedModel.preprocess` (the call the
engine makes), so training and inference normalise pixels the same way.  Augmentation
is the 8 flips and quarter turns (tissue has no up or left) plus a mild per-channel
brightness and contrast jitter.

* The classifier learns soft targets ``(1 - f, f)`` from each patch's tumour fraction
  ``f``, so its tumour probability tracks how much of the patch is tumour; with a global
  average pool over local features that also keeps its Grad-CAM on the tumour.  A
  classifier of more classes (the prostate grader) learns the share of each class in
  the patch the same way (:func:`train_soft_classifier`).
* The segmenter learns per-pixel truth with binary cross-entropy plus soft Dice over the
  batch, on random crops of the patches (it is fully convolutional; crops are cheaper).

Deterministic: the same seed, data and torch thread count give the same weights
(``torch.use_deterministic_algorithms`` is on while training).  Progress goes to a
``log`` callback, never to print.  torch is imported inside functions only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inference.models.demo.data import PatchSet

if TYPE_CHECKING:
    import torch

    from inference.models.loading import LoadedModel

Log = Callable[[str], None]


@dataclass(frozen=True)
class TrainSettings:
    """How to train: passes over the patches, batch size, peak learning rate (one-cycle
    schedule, AdamW), weight decay, ``crop`` (segmentation: train on random square crops
    of this side, a multiple of 8; ``None`` trains on whole patches), ``max_steps`` (stop
    early, for tests) and ``time_limit_s`` (a safety stop; the report says if it hit)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 1e-4
    crop: int | None = None
    max_steps: int | None = None
    time_limit_s: float = 600.0
    log_every: int = 50


@dataclass(frozen=True)
class TrainReport:
    """What a training run did: optimiser steps, samples seen, seconds of training, the
    mean loss of the last 50 steps, and whether the time limit stopped it."""

    steps: int
    samples: int
    seconds: float
    final_loss: float
    hit_time_limit: bool


def channel_stats(rgb: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and standard deviation on the 0..1 scale of ``(..., 3)`` uint8
    pixels (the Normalize arguments of a card)."""
    flat = np.asarray(rgb).reshape(-1, 3).astype(np.float64) / 255.0
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    return (
        (float(mean[0]), float(mean[1]), float(mean[2])),
        (float(std[0]), float(std[1]), float(std[2])),
    )


def state_as_numpy(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """A module's state dict as NumPy arrays (for :func:`demo_cards.write_model_folder`)."""
    return {k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def untrained_model(staging: Path, card: Mapping[str, Any], *, seed: int) -> LoadedModel:
    """Write ``card`` into the new folder ``staging`` and build its network with fresh
    weights (seeded), as the loader would present it."""
    import torch

    from inference.models.architectures import build_architecture
    from inference.models.card import load_card
    from inference.models.demo.cards import WEIGHTS_NAME, write_card
    from inference.models.loading import LoadedModel

    staging.mkdir(parents=True)
    write_card(staging, card)
    loaded_card = load_card(staging)
    torch.manual_seed(seed)
    module = build_architecture(
        loaded_card.architecture,
        loaded_card.num_classes,
        loaded_card.task,
        loaded_card.model_args or None,
    )
    return LoadedModel(
        card=loaded_card,
        module=module,
        weights_path=staging / WEIGHTS_NAME,
        sha256="",
        kind="eager",
        device=torch.device("cpu"),
    )


@contextmanager
def _deterministic() -> Iterator[None]:
    import torch

    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def _dihedral(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Sample ``i`` of ``(N, C, H, W)`` square tensors turned by ``codes[i] % 4`` quarter
    turns, then mirrored when ``codes[i] >= 4``."""
    import torch

    out = torch.empty_like(x)
    for i, code in enumerate(codes.tolist()):
        turned = torch.rot90(x[i], k=code % 4, dims=(1, 2))
        out[i] = torch.flip(turned, dims=(2,)) if code >= 4 else turned
    return out


def _jitter(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mild per-sample, per-channel contrast (x 0.92..1.08) and brightness (+-0.1 std)."""
    import torch

    n, c = x.shape[:2]
    scale = 1.0 + 0.08 * (2 * torch.rand((n, c, 1, 1), generator=gen) - 1)
    shift = 0.1 * (2 * torch.rand((n, c, 1, 1), generator=gen) - 1)
    return x * scale + shift


class _Loop:
    """Shuffled batches over ``n`` samples for ``epochs`` passes, one-cycle AdamW, logging,
    and the stop rules of :class:`TrainSettings`."""

    def __init__(
        self, module: torch.nn.Module, n: int, settings: TrainSettings, seed: int, tag: str
    ) -> None:
        import torch

        if n < 1:
            raise ValueError(f"{tag}: no training patches")
        self.settings = settings
        self.tag = tag
        self.gen = torch.Generator().manual_seed(seed)
        self.per_epoch = math.ceil(n / settings.batch_size)
        self.total = settings.epochs * self.per_epoch
        if settings.max_steps is not None:
            self.total = min(self.total, settings.max_steps)
        self.n = n
        self.optimizer = torch.optim.AdamW(
            module.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
        )
        self.schedule = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=settings.lr, total_steps=max(2, self.total), pct_start=0.15
        )
        self.losses: list[float] = []
        self.samples = 0
        self.hit_time_limit = False
        self.start = time.perf_counter()

    def batches(self) -> Iterator[np.ndarray]:
        import torch

        step = 0
        for _ in range(self.settings.epochs):
            order = torch.randperm(self.n, generator=self.gen).numpy()
            for b in range(self.per_epoch):
                if step >= self.total:
                    return
                if time.perf_counter() - self.start > self.settings.time_limit_s:
                    self.hit_time_limit = True
                    return
                idx = np.sort(
                    order[b * self.settings.batch_size : (b + 1) * self.settings.batch_size]
                )
                yield idx
                step += 1

    def step(self, loss: torch.Tensor, batch: int, log: Log) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.schedule.step()
        self.losses.append(float(loss.detach()))
        self.samples += batch
        done = len(self.losses)
        if done % self.settings.log_every == 0 or done == self.total:
            recent = float(np.mean(self.losses[-self.settings.log_every :]))
            log(
                f"[{self.tag}] step {done}/{self.total} (epoch {math.ceil(done / self.per_epoch)}"
                f"/{self.settings.epochs}) loss {recent:.4f}  "
                f"{time.perf_counter() - self.start:.0f} s"
            )

    def report(self) -> TrainReport:
        return TrainReport(
            steps=len(self.losses),
            samples=self.samples,
            seconds=time.perf_counter() - self.start,
            final_loss=float(np.mean(self.losses[-50:])) if self.losses else math.nan,
            hit_time_limit=self.hit_time_limit,
        )


def train_classifier(
    model: LoadedModel,
    patches: PatchSet,
    settings: TrainSettings,
    *,
    seed: int,
    log: Log = lambda _: None,
) -> TrainReport:
    """Train ``model.module`` (a 2-class patch classifier, classes other and tumour) in
    place on ``patches``; leave it in eval mode.  Returns what the run did."""
    f = patches.tumour_fraction.astype(np.float32)
    targets = np.stack([1.0 - f, f], axis=1)
    return train_soft_classifier(
        model, patches.rgb, targets, settings, seed=seed, log=log, tag="classifier"
    )


def train_soft_classifier(
    model: LoadedModel,
    rgb: np.ndarray,
    targets: np.ndarray,
    settings: TrainSettings,
    *,
    seed: int,
    log: Log = lambda _: None,
    tag: str = "classifier",
) -> TrainReport:
    """Train ``model.module`` (a patch classifier of ``C`` classes) in place on ``(n, S,
    S, 3)`` uint8 patches against soft ``(n, C)`` targets (each row sums to 1: the share
    of each class in the patch), by cross-entropy; leave it in eval mode.  Returns what
    the run did."""
    import torch
    import torch.nn.functional as F

    if len(rgb) != len(targets):
        raise ValueError(f"{len(rgb)} patches but {len(targets)} targets")
    torch.manual_seed(seed)
    module = model.module
    soft = torch.from_numpy(np.ascontiguousarray(targets, np.float32))
    with _deterministic():
        module.train()
        loop = _Loop(module, len(rgb), settings, seed, tag)
        for idx in loop.batches():
            x = model.preprocess(rgb[idx])
            codes = torch.randint(0, 8, (len(idx),), generator=loop.gen)
            x = _jitter(_dihedral(x, codes), loop.gen)
            loss = -(soft[idx] * F.log_softmax(module(x), dim=1)).sum(dim=1).mean()
            loop.step(loss, len(idx), log)
        module.eval()
    return loop.report()


def train_segmenter(
    model: LoadedModel,
    patches: PatchSet,
    settings: TrainSettings,
    *,
    seed: int,
    log: Log = lambda _: None,
) -> TrainReport:
    """Train ``model.module`` (a one-output segmentation network) in place on patches
    with masks; leave it in eval mode.  Returns what the run did."""
    import torch
    import torch.nn.functional as F

    if patches.masks is None:
        raise ValueError("segmentation training needs patches sampled with masks")
    side = patches.rgb.shape[1]
    crop = settings.crop or side
    if crop % 8 or crop > side:
        raise ValueError(f"crop must be a multiple of 8 no larger than {side}; got {crop}")
    torch.manual_seed(seed)
    module = model.module
    masks = torch.from_numpy(patches.masks)
    with _deterministic():
        module.train()
        loop = _Loop(module, len(patches), settings, seed, "segmenter")
        for idx in loop.batches():
            # preprocess whole patches (as the engine does), then crop input and truth alike
            full = model.preprocess(patches.rgb[idx])
            truth = masks[idx].unsqueeze(1).float()
            offsets = torch.randint(0, side - crop + 1, (len(idx), 2), generator=loop.gen)
            x = torch.stack(
                [
                    full[i, :, r : r + crop, c : c + crop]
                    for i, (r, c) in enumerate(offsets.tolist())
                ]
            )
            y = torch.stack(
                [
                    truth[i, :, r : r + crop, c : c + crop]
                    for i, (r, c) in enumerate(offsets.tolist())
                ]
            )
            codes = torch.randint(0, 8, (len(idx),), generator=loop.gen)
            x = _jitter(_dihedral(x, codes), loop.gen)
            y = _dihedral(y, codes)
            logits = module(x)
            prob = torch.sigmoid(logits)
            # Dice over the whole batch: per crop it would punish every faint pixel of
            # a crop without tumour as hard as missing a whole tumour
            soft_dice = (2 * (prob * y).sum() + 1.0) / (prob.sum() + y.sum() + 1.0)
            loss = F.binary_cross_entropy_with_logits(logits, y) + (1.0 - soft_dice)
            loop.step(loss, len(idx), log)
        module.eval()
    return loop.report()
