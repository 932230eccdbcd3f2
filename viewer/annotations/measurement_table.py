"""The measurement table of a slide's annotations, as QuPath's "Export measurements".

One row per annotation, in z-order: ``id``, ``name``, ``class``, ``kind``, the area,
perimeter and length, the centroid, the vertex count, the ``note``, the ``slide``, and
for each heatmap given (the viewer passes the visible ones) the mean probability inside
the annotation.  Sizes are in µm with the slide's pixel size (the typed one for a slide
that states none) and in level-0 px without one; the column names say which
(``area_um2`` or ``area_px2``).  A value that does not apply (the area of a ruler) is
empty, and so is a heatmap mean where the heatmap has no value.

A heatmap's mean is over the squares of its grid whose centre lies inside the
annotation (:func:`inference.core.polygon_fill.fill_coverage`, the rasteriser of
figures and ground truth); an annotation smaller than one square takes the square
under its centroid; points take the squares under them, rulers the squares along
them.  Squares without a value (not computed, background) are left out of the mean.

Heatmaps are given as :class:`HeatmapRaster` snapshots (:meth:`HeatmapRaster.of` a
layer, on the thread that owns it), so the table can be computed on another thread
while a job goes on filling the layer.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.core.atomic_io import atomic_write_text
from inference.core.polygon_fill import fill_coverage, ring_edges
from viewer.annotations.measurements import check_mpp, measure
from viewer.annotations.model import Annotation, AnnotationKind
from viewer.layers.heatmap import HeatmapLayer

__all__ = ["HeatmapRaster", "MeasurementTable", "measurement_table", "write_measurement_csv"]


@dataclass(frozen=True)
class HeatmapRaster:
    """A heatmap frozen for measuring: ``probabilities`` ``(C, h, w)`` (NaN where none)
    whose pixel ``(0, 0)`` starts at level-0 ``l0_origin``, ``l0_per_px`` a side; the
    table reports the classes ``classes`` (indices into ``class_names``)."""

    name: str
    class_names: tuple[str, ...]
    probabilities: np.ndarray
    l0_origin: tuple[float, float]
    l0_per_px: float
    classes: tuple[int, ...]

    @classmethod
    def of(cls, layer: HeatmapLayer) -> HeatmapRaster:
        """A copy of what ``layer`` shows now: its class, or every class when it shows
        the most probable one or the confidence."""
        names = tuple(layer.class_names)
        shown = (layer.class_index,) if layer.class_index >= 0 else tuple(range(len(names)))
        origin, l0_per_px = layer.result.raster_geometry()
        return cls(
            name=layer.name,
            class_names=names,
            probabilities=np.array(layer.result.probabilities(), dtype=np.float32),
            l0_origin=(float(origin[0]), float(origin[1])),
            l0_per_px=float(l0_per_px),
            classes=shown,
        )

    def columns(self) -> list[str]:
        return [f"{self.name}: mean {self.class_names[k]} probability" for k in self.classes]

    def means(self, annotation: Annotation) -> list[float | None]:
        """The mean of each reported class over the squares the annotation covers."""
        rows, cols = self._cells(annotation)
        out: list[float | None] = []
        for k in self.classes:
            values = self.probabilities[k, rows, cols]
            values = values[np.isfinite(values)]
            out.append(float(values.mean()) if values.size else None)
        return out

    def _cells(self, annotation: Annotation) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cols)`` of the squares the annotation covers (see the module)."""
        h, w = self.probabilities.shape[1:]
        ox, oy = self.l0_origin
        px = self.l0_per_px
        if annotation.kind.is_area:
            x0, y0, x1, y1 = annotation.l0_bounds
            c0, r0 = max(0, int((x0 - ox) // px)), max(0, int((y0 - oy) // px))
            c1, r1 = min(w, int((x1 - ox) // px) + 1), min(h, int((y1 - oy) // px) + 1)
            if c1 > c0 and r1 > r0:
                rings = [(np.asarray(r, np.float64) - (ox, oy)) / px for r in annotation.l0_rings()]
                inside = fill_coverage(ring_edges(rings), c0, r0, c1 - c0, r1 - r0)
                if inside is not None:
                    rows, cols = np.nonzero(inside)
                    return rows + r0, cols + c0
            points = np.asarray([annotation.l0_centroid], np.float64)
        elif annotation.kind is AnnotationKind.RULER:
            points = _along(np.asarray(annotation.l0_points, np.float64), px / 2.0)
        else:
            points = np.asarray(annotation.l0_points, np.float64)
        cols = np.floor((points[:, 0] - ox) / px).astype(np.int64)
        rows = np.floor((points[:, 1] - oy) / px).astype(np.int64)
        keep = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        unique = np.unique(np.stack([rows[keep], cols[keep]]), axis=1)
        return unique[0], unique[1]


def _along(points: np.ndarray, step: float) -> np.ndarray:
    """Points along a polyline, at most ``step`` apart, both ends included."""
    out = [points[:1]]
    for a, b in itertools.pairwise(points):
        n = max(1, int(np.ceil(float(np.hypot(*(b - a))) / step)))
        t = np.arange(1, n + 1, dtype=np.float64)[:, None] / n
        out.append(a + (b - a) * t)
    return np.concatenate(out)


@dataclass(frozen=True)
class MeasurementTable:
    """The table: ``header`` and one row of text values per annotation."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return buffer.getvalue()


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def measurement_table(
    annotations: Iterable[Annotation],
    mpp: float | None,
    *,
    slide: str,
    heatmaps: Sequence[HeatmapRaster] = (),
) -> MeasurementTable:
    """The measurement table (see the module docstring) of ``annotations`` on ``slide``
    (its name) with ``mpp`` µm per level-0 px (``None``: columns in px)."""
    mpp = check_mpp(mpp)
    unit = "um" if mpp is not None else "px"
    scale = mpp if mpp is not None else 1.0
    header = [
        "id",
        "name",
        "class",
        "kind",
        f"area_{unit}2",
        f"perimeter_{unit}",
        f"length_{unit}",
        f"centroid_x_{unit}",
        f"centroid_y_{unit}",
        "vertex_count",
        "note",
        "slide",
    ]
    for heatmap in heatmaps:
        header += heatmap.columns()
    rows = []
    for annotation in annotations:
        m = measure(annotation, mpp)
        is_area = annotation.kind.is_area
        cx, cy = annotation.l0_centroid
        row = [
            annotation.id,
            annotation.name,
            annotation.class_name or "",
            str(annotation.kind),
            _number(m.area if is_area else None, 2),
            _number(m.length if is_area else None, 2),
            _number(m.length if annotation.kind is AnnotationKind.RULER else None, 2),
            _number(cx * scale, 2),
            _number(cy * scale, 2),
            str(annotation.vertex_count),
            annotation.note,
            slide,
        ]
        for heatmap in heatmaps:
            row += [_number(v, 4) for v in heatmap.means(annotation)]
        rows.append(tuple(row))
    return MeasurementTable(tuple(header), tuple(rows))


def write_measurement_csv(path: Path, table: MeasurementTable) -> Path:
    """Write the table as CSV (UTF-8, atomically); return the path.  :class:`OSError`
    when it cannot be written."""
    path = Path(path)
    atomic_write_text(path, table.csv_text())
    return path
