"""Results of many classes: the class map, the slide report (keys, areas, regions, grade),
the heatmap TIFF with a page per class and the class map, and GeoJSON measurements."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from inference.engine.patches import PatchGrid
from inference.results.class_map import NO_CLASS, NO_VALUE, ClassMap
from inference.results.exports import (
    CLASS_MAP_NO_VALUE,
    read_heatmap_geometry,
    read_heatmap_page,
    write_geojson,
    write_heatmap_tiff,
)
from inference.results.grading import GradingSpec
from inference.results.slide_level import slide_level_outputs
from inference.results.slide_report import read_slide_report, slide_report, write_slide_report
from inference.results.store import ResultGrid
from tests.helpers.results import batch

CLASSES = ("background", "stroma", "benign", "gleason3", "gleason4", "gleason5")
GRADING = GradingSpec(patterns={"gleason3": 3, "gleason4": 4, "gleason5": 5})
# the class of each patch of a 5 x 4 grid of 100 px patches (-1: not computed)
LAYOUT = [
    [1, 1, 3, 3, 1],
    [1, 3, 3, 4, -1],
    [2, 2, 1, 4, 4],
    [2, 1, 1, 1, 0],
]


def _result(layout: list[list[int]] = LAYOUT, confidence: float = 0.8) -> ResultGrid:
    rows, cols = len(layout), len(layout[0])
    grid = PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(0, 0), p_cols=cols, p_rows=rows)
    result = ResultGrid(grid, CLASSES)
    ij, probs = [], []
    for r in range(rows):
        for c in range(cols):
            if layout[r][c] < 0:
                continue
            p = np.full(len(CLASSES), (1 - confidence) / (len(CLASSES) - 1), np.float32)
            p[layout[r][c]] = confidence
            ij.append((c, r))
            probs.append(p)
    background = [(c, r) for r in range(rows) for c in range(cols) if layout[r][c] < 0]
    result.add(batch(grid, ij, np.array(probs), background=background))
    return result


def test_class_map_labels_confidence_and_hover() -> None:
    cmap = ClassMap.from_result(_result())
    assert cmap.labels[1, 4] == NO_VALUE and np.isnan(cmap.confidence[1, 4])
    expected = np.array(LAYOUT)
    assert np.array_equal(cmap.labels, expected)
    assert cmap.valid_cells == 19
    assert cmap.counts().tolist() == [1, 8, 3, 4, 3, 0]
    np.testing.assert_allclose(cmap.confidence[expected >= 0], 0.8)
    np.testing.assert_allclose(cmap.margin[expected >= 0], 0.8 - 0.04, atol=1e-6)
    assert cmap.class_at(250.0, 50.0) == (3, pytest.approx(0.8))
    assert cmap.class_at(450.0, 150.0) is None and cmap.class_at(-1.0, 0.0) is None
    assert cmap.cell_area_mm2(0.5) == pytest.approx((100 * 0.5 / 1000) ** 2)


def test_one_output_class_map_uses_the_threshold() -> None:
    grid = PatchGrid(l0_patch=10, l0_stride=10, l0_origin=(0, 0), p_cols=3, p_rows=1)
    result = ResultGrid(grid, ("tumour",))
    result.add(batch(grid, [(0, 0), (1, 0)], np.array([[0.7], [0.2]])))
    cmap = ClassMap.from_result(result, threshold=0.6)
    assert cmap.labels.tolist() == [[0, NO_CLASS, NO_VALUE]]
    np.testing.assert_allclose(cmap.confidence[0, :2], [0.7, 0.8], atol=1e-6)


def test_largest_region_is_where_to_go() -> None:
    cmap = ClassMap.from_result(_result())
    region = cmap.largest_region(3)  # cells (0,2) (0,3) (1,1) (1,2): one 8-connected region
    assert region is not None and region.cells == 4
    assert region.l0_rect == (100.0, 0.0, 300.0, 200.0)
    x, y = region.l0_point
    assert cmap.class_at(x, y) == (3, pytest.approx(0.8))
    g4 = cmap.largest_region(4)  # (1,3) (2,3) (2,4)
    assert g4 is not None and g4.cells == 3
    assert cmap.largest_region(5) is None


def test_slide_report_keys_areas_and_grade(tmp_path: Path) -> None:
    result = _result()
    report = slide_report(result, mpp=0.5, grading=GRADING, slide="s.tiff", model={"name": "m"})
    for key in (
        "isup_grade",
        "gleason_score",
        "class_area_mm2",
        "class_fraction",
        "largest_region",
        "tissue_area_mm2",
    ):
        assert key in report
    # tumour: 4 gleason3, 3 gleason4 -> 3 primary, 4 secondary (biopsy) -> ISUP 2
    assert report["gleason_score"] == "3+4" and report["isup_grade"] == 2
    assert (report["gleason_primary"], report["gleason_secondary"]) == (3, 4)
    cell_mm2 = (100 * 0.5 / 1000) ** 2
    assert report["class_area_mm2"]["stroma"] == pytest.approx(8 * cell_mm2)
    assert report["tissue_area_mm2"] == pytest.approx(19 * cell_mm2)
    assert report["class_fraction"]["gleason4"] == pytest.approx(3 / 19, abs=1e-6)
    assert report["tumour_fraction"] == pytest.approx(7 / 19, abs=1e-6)
    assert report["largest_region"]["gleason5"] is None
    assert report["largest_region"]["gleason3"]["l0_rect"] == [100.0, 0.0, 300.0, 200.0]
    assert report["grading"]["patterns"] == {"gleason3": 3, "gleason4": 4, "gleason5": 5}
    path = tmp_path / "s.slide.json"
    write_slide_report(path, report)
    assert read_slide_report(path) == json.loads(json.dumps(report))
    path.write_text("{}")
    with pytest.raises(ValueError, match="not a SlideLens slide report"):
        read_slide_report(path)


def test_slide_report_without_grading_or_pixel_size() -> None:
    report = slide_report(_result(), mpp=None)
    assert report["isup_grade"] is None and report["gleason_score"] is None
    assert report["grading"] is None and report["class_area_mm2"]["stroma"] is None
    assert report["class_fraction"]["stroma"] == pytest.approx(8 / 19, abs=1e-6)


def test_slide_level_outputs_include_the_grade() -> None:
    outputs = slide_level_outputs(_result(), GRADING)
    assert outputs["isup_grade"] == 2.0
    assert (outputs["gleason_primary"], outputs["gleason_secondary"]) == (3.0, 4.0)
    assert "isup_grade" not in slide_level_outputs(_result())
    benign = _result([[1, 2], [2, 1]])
    assert slide_level_outputs(benign, GRADING)["isup_grade"] == 0.0


def test_heatmap_tiff_holds_every_class_and_the_class_map(tmp_path: Path) -> None:
    result = _result()
    path = tmp_path / "h.tiff"
    geometry = write_heatmap_tiff(path, result, mpp=0.5)
    # the first image is still the last class's probability, for one-class readers
    assert read_heatmap_geometry(path)["class_name"] == "gleason5"
    names = [entry["name"] for entry in geometry["pages"]]
    assert names == [
        "prob_gleason5",
        *(f"prob_{n}" for n in CLASSES[:-1]),
        "class_map",
    ]
    with tifffile.TiffFile(path) as tif:
        page_names = [page.tags["PageName"].value for page in tif.pages]  # type: ignore[union-attr]
    assert page_names == names  # one level each: the raster is small
    probs = result.probabilities()
    for k, name in enumerate(CLASSES):
        expected = np.round(np.nan_to_num(probs[k]) * 255).astype(np.uint8)
        assert np.array_equal(read_heatmap_page(path, f"prob_{name}"), expected)
    class_map = read_heatmap_page(path, "class_map")
    expected_map = np.array(LAYOUT)
    assert np.array_equal(class_map[expected_map >= 0], expected_map[expected_map >= 0])
    assert class_map[1, 4] == CLASS_MAP_NO_VALUE
    with pytest.raises(KeyError, match="holds no image 'prob_tumour'"):
        read_heatmap_page(path, "prob_tumour")


def test_two_class_heatmap_tiff_keeps_one_image(tmp_path: Path) -> None:
    grid = PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(0, 0), p_cols=2, p_rows=1)
    result = ResultGrid(grid, ("benign", "tumour"))
    result.add(batch(grid, [(0, 0), (1, 0)], np.array([[0.9, 0.1], [0.2, 0.8]])))
    path = tmp_path / "two.tiff"
    geometry = write_heatmap_tiff(path, result)
    assert [e["name"] for e in geometry["pages"]] == ["prob_tumour"]
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 1
    assert read_heatmap_page(path, "prob_tumour").tolist() == [[26, 204]]
    both = write_heatmap_tiff(tmp_path / "both.tiff", result, class_pages=True)
    assert [e["name"] for e in both["pages"]] == ["prob_tumour", "prob_benign", "class_map"]
    assert read_heatmap_page(tmp_path / "both.tiff", "class_map").tolist() == [[0, 1]]


def test_geojson_tiles_carry_every_class_probability(tmp_path: Path) -> None:
    result = _result()
    path = tmp_path / "s.geojson"
    assert write_geojson(path, result) == 19
    features = json.loads(path.read_text())["features"]
    by_corner = {tuple(f["geometry"]["coordinates"][0][0]): f["properties"] for f in features}
    props = by_corner[(300, 100)]  # patch (3, 1): gleason4
    assert props["classification"]["name"] == "gleason4"
    assert set(props["measurements"]) == {f"prob_{n}" for n in CLASSES}
    assert props["measurements"]["prob_gleason4"] == pytest.approx(0.8)
    assert sum(props["measurements"].values()) == pytest.approx(1.0, abs=1e-5)
