"""What ``--model NAME`` means for a slide-level answer: a patch model and an aggregator.

Contract: :func:`resolve_pipeline` takes what a user names (a bundled or user model,
or a folder) and returns a :class:`SlidePipeline`: the patch model's folder and the
aggregator that makes the slide's answer from its stored outputs.

* A patch model's folder: the aggregator its card declares in ``slidelens.aggregation``
  (``None`` when it declares none).
* A slide-level head's folder (:mod:`inference.slide_level.head_card`): its feature
  extractor is the patch model, and the head is the aggregator; the extractor's patch
  side in micrometres must be the head's ``patch_size_um``.

Raises a :class:`~inference.models.card.ModelError` naming the file (a bad card or
head config, weights that do not load, an untrusted TorchScript head, a feature
extractor that is missing or of another patch size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from inference.models.card import load_card
from inference.models.registry import is_slide_head, resolve_model
from inference.models.trust import TrustStore
from inference.slide_level.aggregate import Aggregator, card_aggregator, head_aggregator
from inference.slide_level.head_card import SlideHeadCard, SlideHeadError, load_head_card


@dataclass
class SlidePipeline:
    """The patch model's folder, the aggregator (``None``: no slide-level answer) and,
    for a slide-level head, its card."""

    patch_folder: Path
    aggregator: Aggregator | None
    head_card: SlideHeadCard | None = None


def resolve_pipeline(
    name_or_folder: str | Path, *, trust: bool = False, trust_store: TrustStore | None = None
) -> SlidePipeline:
    """See the module docstring."""
    folder = resolve_model(str(name_or_folder))
    if not is_slide_head(folder):
        card = load_card(folder)
        return SlidePipeline(folder, card_aggregator(card, trust=trust, trust_store=trust_store))
    head_card = load_head_card(folder)
    patch_folder = head_card.feature_extractor_folder()
    patch_card = load_card(patch_folder)
    side_um = patch_card.patch_size_pixels * patch_card.spacing_um_px
    if not math.isclose(side_um, head_card.patch_size_um, rel_tol=1e-3):
        raise SlideHeadError(
            f"{head_card.config_path}: field 'patch_size_um' is {head_card.patch_size_um:g} "
            f"but the feature extractor {patch_card.name!r} reads patches of "
            f"{side_um:g} um; the head was trained on other patches"
        )
    aggregator = head_aggregator(head_card, trust=trust, trust_store=trust_store)
    return SlidePipeline(patch_folder, aggregator, head_card)
