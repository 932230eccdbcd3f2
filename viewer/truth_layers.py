"""The layer a loaded ground truth is shown as, in the window and in ``slidelens export``.

A binary truth (a 0/255 or 0/1 mask, GeoJSON polygons) is a black outline
(:data:`~inference.core.palette.GROUND_TRUTH_COLOUR`).  A label image with more than one
class above 0 (PANDA's 0-5) is a :class:`~viewer.layers.masks.LabelMaskLayer`: each
class's outline in its colour, named by ``labels`` of the ``<stem>.truth.json`` beside
the mask when there is one (``slidelens synth`` writes it), else by the classes of a
multi-class result on screen (label ``k`` is its class ``k``), else ``class 1``,
``class 2``...; colours come from the one palette by name, so a truth class named like
a model class outlines the colour the class map fills it with (numbered classes past
the palette's free colours share them).  Both are outlines, opacity 0.9, with provenance
``{"kind": "truth", "source": path}``.  Qt-free.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from inference.core.palette import GROUND_TRUTH_COLOUR, result_class_colours
from viewer.layers.masks import LabelMaskLayer, MaskLayer

if TYPE_CHECKING:
    from inference.evaluation.truth import TruthMask

log = logging.getLogger(__name__)

#: The suffix of a label mask beside its slide (``OUT.mask.png``), and of its truth file.
MASK_SUFFIX = ".mask"
TRUTH_JSON_SUFFIX = ".truth.json"


def truth_layer(
    truth: TruthMask, path: Path, model_classes: Sequence[str] | None = None
) -> MaskLayer:
    """The outline layer of ``truth``, read from ``path`` (see the module docstring).
    ``model_classes``: the classes of a result on screen, whose class ``k`` label ``k``
    means (as the Metrics panel reads a label image); they name the labels when no
    truth file beside the mask does and they cover every label."""
    path = Path(path)
    provenance = {"kind": "truth", "source": str(path.resolve())}
    name = f"Ground truth: {path.name}"
    labels = truth.labels
    if labels is not None and np.count_nonzero(np.unique(labels) > 0) > 1:
        top = int(labels.max())
        names = label_names(path, top)
        numbered = names == numbered_names(top)
        if numbered and model_classes is not None and len(model_classes) > top:
            names = tuple(model_classes[: top + 1])
        layer: MaskLayer = LabelMaskLayer(
            name,
            labels,
            truth.l0_per_px,
            names,
            result_class_colours(names),
            provenance=provenance,
        )
        layer.outline_only = True
        return layer
    layer = MaskLayer(
        name,
        truth.mask,
        truth.l0_per_px,
        colour=GROUND_TRUTH_COLOUR,
        opacity=0.9,
        provenance=provenance,
    )
    layer.outline_only = True
    return layer


def numbered_names(top: int) -> tuple[str, ...]:
    """``class 0`` ... ``class <top>``: labels nothing names."""
    return tuple(f"class {k}" for k in range(top + 1))


def label_names(mask_path: Path, top: int) -> tuple[str, ...]:
    """Names of labels ``0..top``: ``labels`` of the truth file beside the mask
    (``a.mask.png`` -> ``a.truth.json``), else ``class k``; a truth file that cannot be
    read is logged and the numbered names used."""
    names = list(numbered_names(top))
    ending = MASK_SUFFIX + mask_path.suffix
    if not mask_path.name.endswith(ending):
        return tuple(names)
    truth_json = mask_path.with_name(mask_path.name[: -len(ending)] + TRUTH_JSON_SUFFIX)
    if not truth_json.is_file():
        return tuple(names)
    try:
        stated = json.loads(truth_json.read_text("utf-8")).get("labels", {})
    except (OSError, ValueError, AttributeError) as exc:
        log.warning("%s: label names not read (%s); numbering the classes", truth_json, exc)
        return tuple(names)
    if isinstance(stated, dict):
        for key, value in stated.items():
            if str(key).isdecimal() and int(key) <= top and isinstance(value, str) and value:
                names[int(key)] = value
    return tuple(names)
