"""Ground truth of a model's classes: one class index per pixel, from a label mask or
classified GeoJSON polygons.

* A **label mask** (read by :func:`inference.evaluation.truth.load_truth`: 0/1 and label
  images such as PANDA's 0-5, palette PNGs by their indices) holds the class index
  itself: value ``k`` is the model's class ``k`` (so the demo prostate grader's classes
  follow PANDA's Radboud values: 0 background, 1 stroma, 2 benign, 3-5 Gleason 3-5).  A
  value the model has no class for is refused, and so is a binary mask (0/255, 1-bit,
  soft grey), which says where one thing is, not which class each pixel is.
* **GeoJSON** polygons (QuPath's format) are painted in file order, a later polygon over
  an earlier one, with the class their classification name means
  (:func:`class_index_of`): the card's ``slidelens.truth_classes`` (e.g. ``{"Gleason
  3": "gleason3"}``, matched exactly, then ignoring case), else a model class of that
  name (exactly, then ignoring case and spelling:
  :func:`inference.core.palette.class_key`).  Names that match nothing are refused,
  all named in one message.  Pixels no polygon covers are class 0, as in a label mask.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from inference.core.palette import class_key
from inference.core.polygon_fill import fill_coverage, ring_edges
from inference.evaluation.truth import TruthError, TruthMask, load_truth, read_geojson_polygons

#: The name an unclassified GeoJSON feature is reported by.
UNCLASSIFIED = "(unclassified)"


def class_index_of(
    name: str, class_names: Sequence[str], truth_classes: Mapping[str, str] | None = None
) -> int | None:
    """The model class a ground-truth class ``name`` means (see the module docstring),
    or ``None``."""
    mapping = dict(truth_classes or {})
    target = mapping.get(name)
    if target is None:
        folded = [v for k, v in mapping.items() if k.casefold() == name.casefold()]
        target = folded[0] if len(folded) == 1 else None
    wanted = target if target is not None else name
    names = list(class_names)
    if wanted in names:
        return names.index(wanted)
    for rule in (str.casefold, class_key):
        matches = [i for i, n in enumerate(names) if rule(n) == rule(wanted)]
        if len(matches) == 1:
            return matches[0]
    return None


def load_class_truth(
    path: str | Path,
    l0_dimensions: tuple[int, int],
    class_names: Sequence[str],
    *,
    truth_classes: Mapping[str, str] | None = None,
    l0_per_px: float | None = None,
    l0_origin: tuple[float, float] = (0.0, 0.0),
) -> TruthMask:
    """The ground truth at ``path`` as class indices of ``class_names`` (see the module),
    for a slide of ``l0_dimensions``: a :class:`TruthMask` whose ``labels`` are class
    indices (``mask`` is ``labels > 0``).  ``l0_per_px`` sets the raster scale of
    polygons, whose coordinates count from ``l0_origin`` (the slide's bounds corner, as
    in :func:`~inference.evaluation.truth.load_truth`).  Raises :class:`TruthError`
    naming the file and the cause."""
    path = Path(path).expanduser()
    if path.suffix.lower() in {".geojson", ".json"}:
        return _from_geojson(path, l0_dimensions, class_names, truth_classes, l0_per_px, l0_origin)
    truth = load_truth(path, l0_dimensions)
    if truth.labels is None and truth.encoding not in ("0/1",) and len(class_names) > 2:
        raise TruthError(
            path,
            f"a binary mask ({truth.encoding}) says where one thing is, not which of the "
            f"model's {len(class_names)} classes each pixel is; use a label image (pixel "
            "value = class index) or classified GeoJSON polygons",
        )
    labels = truth.label_image
    top = int(labels.max()) if labels.size else 0
    if top >= len(class_names):
        raise TruthError(
            path,
            f"holds label {top}, but the model has {len(class_names)} classes "
            f"(0-{len(class_names) - 1}: {', '.join(class_names)}); a label's value is the "
            "class index",
        )
    values = sorted(int(v) for v in np.unique(labels))
    present = ", ".join(f"{v} {class_names[v]}" for v in values)
    return TruthMask(
        labels > 0,
        truth.l0_per_px,
        path,
        labels=labels.astype(np.uint8),
        encoding=truth.encoding,
        note=f"label image: value = class index ({present})",
    )


def _from_geojson(
    path: Path,
    l0_dimensions: tuple[int, int],
    class_names: Sequence[str],
    truth_classes: Mapping[str, str] | None,
    l0_per_px: float | None,
    l0_origin: tuple[float, float],
) -> TruthMask:
    scale, shape, polygons = read_geojson_polygons(
        path, l0_dimensions, l0_per_px=l0_per_px, l0_origin=l0_origin
    )
    if not polygons:
        raise TruthError(path, "no polygon features found")
    indices: dict[str, int | None] = {}
    for polygon in polygons:
        if polygon.class_name not in indices:
            indices[polygon.class_name] = class_index_of(
                polygon.class_name, class_names, truth_classes
            )
    unknown = sorted(name or UNCLASSIFIED for name, index in indices.items() if index is None)
    if unknown:
        raise TruthError(
            path,
            f"classes {', '.join(map(repr, unknown))} are not classes of the model "
            f"({', '.join(class_names)}); map them in the card's slidelens.truth_classes",
        )
    if len(class_names) > 255:
        raise TruthError(path, "more than 255 classes cannot be held in a label mask")
    labels = np.zeros(shape, np.uint8)
    for polygon in polygons:
        index = indices[polygon.class_name]
        assert index is not None
        _paint(labels, ring_edges(list(polygon.rings)), index)
    found = sorted({i for i in indices.values() if i is not None})
    return TruthMask(
        labels > 0,
        scale,
        path,
        labels=labels,
        encoding="GeoJSON polygons by class",
        note="classes: " + ", ".join(class_names[i] for i in found),
    )


def _paint(labels: np.ndarray, edges: np.ndarray, value: int, band_rows: int = 512) -> None:
    """Set the pixels whose centre is inside ``edges`` (even-odd) to ``value``, over the
    polygon's bounding box only, band by band so memory stays small."""
    if len(edges) == 0:
        return
    xs, ys = edges[:, :, 0], edges[:, :, 1]
    r0 = max(0, math.floor(float(ys.min())))
    r1 = min(labels.shape[0], math.ceil(float(ys.max())) + 1)
    c0 = max(0, math.floor(float(xs.min())))
    c1 = min(labels.shape[1], math.ceil(float(xs.max())) + 1)
    if c1 <= c0:
        return
    for top in range(r0, r1, band_rows):
        rows = min(band_rows, r1 - top)
        inside = fill_coverage(edges, c0, top, c1 - c0, rows)
        if inside is not None:
            labels[top : top + rows, c0:c1][inside] = value
