"""The measurement table: one row per annotation with its sizes (µm, or px without a
pixel size), centroid, vertex count, note, slide, and each heatmap's mean inside it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from inference.engine.patches import PatchGrid
from inference.results.store import ResultGrid
from viewer.annotations import DEFAULT_CLASSES, Annotation
from viewer.annotations.measurement_table import (
    HeatmapRaster,
    measurement_table,
    write_measurement_csv,
)
from viewer.layers.heatmap import ARGMAX, HeatmapLayer

TUMOUR = DEFAULT_CLASSES[0]


def four_by_four() -> ResultGrid:
    """Cells of 100 level-0 px from (0, 0); P(tumour) is 0.1, 0.3, 0.5, 0.7 by column;
    the bottom-right cell is not computed."""
    grid = PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(0, 0), p_cols=4, p_rows=4)
    result = ResultGrid(grid, ["other", "tumour"])
    tumour = np.tile(np.array([0.1, 0.3, 0.5, 0.7], np.float32), (4, 1))
    probs = np.stack([1 - tumour, tumour])
    result.patch_probs[...] = probs
    result.sums[...] = probs
    result.weights[...] = 1.0
    result.weights[3, 3] = 0.0
    return result


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(text.splitlines()))


def test_sizes_are_in_microns_with_a_pixel_size() -> None:
    annotations = [
        Annotation.rectangle(0, 0, 100, 50, classification=TUMOUR, name="R", note="a, b"),
        Annotation.ruler([(0, 0), (30, 40)]),
        Annotation.points([(10, 10), (30, 50)]),
    ]
    table = measurement_table(annotations, 0.5, slide="case.svs")
    assert table.header[:12] == (
        "id",
        "name",
        "class",
        "kind",
        "area_um2",
        "perimeter_um",
        "length_um",
        "centroid_x_um",
        "centroid_y_um",
        "vertex_count",
        "note",
        "slide",
    )
    rect, ruler, points = rows_of(table.csv_text())
    assert rect["id"] == annotations[0].id and rect["class"] == "Tumour"
    assert (rect["area_um2"], rect["perimeter_um"], rect["length_um"]) == ("1250.00", "150.00", "")
    assert (rect["centroid_x_um"], rect["centroid_y_um"]) == ("25.00", "12.50")
    assert (rect["note"], rect["slide"], rect["kind"]) == ("a, b", "case.svs", "rectangle")
    assert (ruler["area_um2"], ruler["perimeter_um"], ruler["length_um"]) == ("", "", "25.00")
    assert (points["vertex_count"], points["area_um2"], points["length_um"]) == ("2", "", "")
    assert (points["centroid_x_um"], points["centroid_y_um"]) == ("10.00", "15.00")


def test_without_a_pixel_size_the_columns_say_px() -> None:
    table = measurement_table([Annotation.rectangle(0, 0, 100, 50)], None, slide="patch.png")
    (row,) = rows_of(table.csv_text())
    assert row["area_px2"] == "5000.00" and row["perimeter_px"] == "300.00"
    assert "area_um2" not in row


def test_heatmap_means_inside_each_annotation() -> None:
    layer = HeatmapLayer("demo on the view", four_by_four())  # shows P(tumour)
    raster = HeatmapRaster.of(layer)
    annotations = [
        Annotation.rectangle(0, 0, 200, 400),  # columns 0 and 1: (0.1 + 0.3) / 2
        Annotation.polygon([(200, 0), (400, 0), (400, 400)]),  # cells right of the diagonal
        Annotation.ellipse(10, 10, 30, 30),  # smaller than a cell: the cell under it
        Annotation.points([(350, 50), (350, 150), (250, 50)]),
        Annotation.ruler([(50, 250), (350, 250)]),  # along row 2: every column
        Annotation.rectangle(300, 300, 400, 400),  # only the uncomputed cell
        Annotation.rectangle(5000, 5000, 5100, 5100),  # off the heatmap
    ]
    table = measurement_table(annotations, 0.5, slide="s", heatmaps=[raster])
    column = "demo on the view: mean tumour probability"
    assert table.header[-1] == column
    means = [row[column] for row in rows_of(table.csv_text())]
    # the triangle holds the centres of cells (row 0, col 2) and (rows 0-2, col 3)
    triangle = np.mean([0.5, 0.7, 0.7, 0.7])
    assert means == ["0.2000", f"{triangle:.4f}", "0.1000", "0.6333", "0.4000", "", ""]


def test_a_class_map_layer_reports_every_class() -> None:
    layer = HeatmapLayer("argmax", four_by_four())
    layer.class_index = ARGMAX
    table = measurement_table(
        [Annotation.rectangle(0, 0, 100, 100)], 1.0, slide="s", heatmaps=[HeatmapRaster.of(layer)]
    )
    assert table.header[-2:] == (
        "argmax: mean other probability",
        "argmax: mean tumour probability",
    )
    assert table.rows[0][-2:] == ("0.9000", "0.1000")


def test_the_snapshot_does_not_follow_the_layer() -> None:
    result = four_by_four()
    raster = HeatmapRaster.of(HeatmapLayer("h", result))
    result.sums[...] = 0.0  # a running job keeps filling the layer
    means = raster.means(Annotation.rectangle(0, 0, 100, 100))
    assert means == [pytest.approx(0.1)]


def test_the_csv_is_written_and_read_back(tmp_path: Path) -> None:
    annotations = [Annotation.rectangle(0, 0, 10, 10, name="ünïcødé")]
    path = write_measurement_csv(
        tmp_path / "m.csv", measurement_table(annotations, 0.25, slide="s.svs")
    )
    (row,) = rows_of(path.read_text("utf-8"))
    assert row["name"] == "ünïcødé" and row["area_um2"] == "6.25"
