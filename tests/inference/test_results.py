"""Result grids (overlap averaging, blending), the result cache, and the export writers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from inference.engine.patches import PatchGrid
from inference.results.exports import (
    OutputPaths,
    read_heatmap_geometry,
    write_csv,
    write_geojson,
    write_heatmap_tiff,
    write_json,
)
from inference.results.store import (
    ResultGrid,
    SegmentationMap,
    hann_weights,
)
from tests.helpers.results import NAMES, batch, classification_result


def test_cells_average_overlapping_patches_by_area() -> None:
    grid = PatchGrid(l0_patch=100, l0_stride=50, l0_origin=(0, 0), p_cols=3, p_rows=1)
    result = ResultGrid(grid, NAMES)
    result.add(batch(grid, [(0, 0), (1, 0), (2, 0)], [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))
    probs = result.probabilities()
    # cell 0 is covered by patch 0 (weight 1) and half by patch 1 (weight 0.5)
    np.testing.assert_allclose(probs[1, 0], [0.5 / 1.5, 1.5 / 2.0, 1.5 / 1.5])
    np.testing.assert_allclose(result.patch_probs[1, 0], [0.0, 1.0, 1.0])
    assert result.cell_l0_origin() == (25.0, 25.0)
    assert result.argmax().tolist() == [[0, 1, 1]]


def test_uneven_overlap_weights_by_covered_area() -> None:
    grid = PatchGrid(l0_patch=40, l0_stride=30, l0_origin=(0, 0), p_cols=2, p_rows=1)
    result = ResultGrid(grid, NAMES)
    result.add(batch(grid, [(0, 0)], [[1.0, 0.0]]))
    result.add(batch(grid, [(1, 0)], [[0.0, 1.0]]))
    # cells are [5, 35) and [35, 65); patch 0 is [0, 40), patch 1 is [30, 70)
    w_own, w_next = 1.0, 5.0 / 30.0
    expected = w_next / (w_own + w_next)
    np.testing.assert_allclose(result.probabilities()[1, 0], [expected, 1 - expected], atol=1e-6)


def test_background_and_missing_cells_are_nan() -> None:
    grid = PatchGrid(l0_patch=10, l0_stride=10, l0_origin=(0, 0), p_cols=3, p_rows=2)
    result = ResultGrid(grid, NAMES)
    result.add(batch(grid, [(0, 0)], [[0.2, 0.8]], background=[(2, 1)]))
    probs = result.probabilities()
    assert not np.isnan(probs[:, 0, 0]).any()
    assert np.isnan(probs[:, 1, 2]).all() and np.isnan(probs[:, 0, 1]).all()
    assert result.background[1, 2] and result.coverage == pytest.approx(2 / 6)
    assert result.argmax()[0, 1] == -1


def test_batch_of_another_grid_is_refused() -> None:
    grid = PatchGrid(10, 10, (0, 0), 2, 2)
    other = PatchGrid(10, 10, (10, 0), 2, 2)
    with pytest.raises(ValueError, match="grid"):
        ResultGrid(grid, NAMES).add(batch(other, [(0, 0)], [[0.5, 0.5]]))


def test_segmentation_blending_is_smooth_and_exact_for_constant_tiles() -> None:
    grid = PatchGrid(l0_patch=32, l0_stride=16, l0_origin=(0, 0), p_cols=3, p_rows=1)
    seg = SegmentationMap(grid, NAMES, l0_per_px=4.0, tile_px=8)
    tiles = np.zeros((3, 2, 8, 8), np.float32)
    tiles[:, 1] = np.array([0.0, 0.5, 1.0])[:, None, None]
    tiles[:, 0] = 1 - tiles[:, 1]
    seg.add(batch(grid, [(0, 0), (1, 0), (2, 0)], tiles, l0_per_px=4.0))
    probs = seg.probabilities()
    assert probs.shape == (2, 8, 16)
    row = probs[1, 4]
    assert np.all(np.diff(row) >= -1e-6)  # a ramp, no seams
    assert row[0] == pytest.approx(0.0, abs=1e-3) and row[-1] == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(seg.patch_probs[1, 0], [0.0, 0.5, 1.0])
    w = hann_weights(8)
    assert w.min() > 0 and w[3:5, 3:5].min() > 0.9


def test_csv_has_wsinfer_columns_one_row_per_patch(tmp_path: Path) -> None:
    result = classification_result()
    path = tmp_path / "s.csv"
    assert write_csv(path, result) == 10
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["minx", "miny", "width", "height", "prob_benign", "prob_tumour"]
    assert rows[5]["minx"] == "224" and rows[5]["miny"] == "224" and rows[5]["width"] == "224"
    total = float(rows[5]["prob_benign"]) + float(rows[5]["prob_tumour"])
    assert total == pytest.approx(1.0, abs=2e-6)


def test_geojson_is_a_qupath_feature_collection(tmp_path: Path) -> None:
    result = classification_result()
    path = tmp_path / "s.geojson"
    assert write_geojson(path, result) == 10
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 10
    feature = doc["features"][1]
    ring = feature["geometry"]["coordinates"][0]
    assert feature["geometry"]["type"] == "Polygon"
    assert ring[0] == ring[-1] == [224, 0] and ring[2] == [448, 224]
    props = feature["properties"]
    assert props["objectType"] == "tile"
    assert set(props["measurements"]) == {"prob_benign", "prob_tumour"}
    best = max(props["measurements"], key=props["measurements"].get)
    assert props["classification"]["name"] == best.removeprefix("prob_")
    assert len(props["classification"]["color"]) == 3


def test_heatmap_tiff_is_pyramidal_with_geometry(tmp_path: Path) -> None:
    grid = PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(0, 0), p_cols=600, p_rows=300)
    result = ResultGrid(grid, NAMES)
    ij = [(c, 7) for c in range(600)]
    p = np.linspace(0, 1, 600, dtype=np.float32)[:, None]
    result.add(batch(grid, ij, np.hstack([1 - p, p])))
    path = tmp_path / "h.tiff"
    geometry = write_heatmap_tiff(path, result, mpp=0.5, extra={"slide": "x.svs"})
    assert geometry["l0_per_px"] == 100.0 and geometry["slide"] == "x.svs"
    assert read_heatmap_geometry(path)["class_name"] == "tumour"
    with tifffile.TiffFile(path) as tif:
        shapes = [page.shape for page in tif.pages]
        assert shapes == [(300, 600), (150, 300), (75, 150)]
        assert tif.pages[0].is_tiled
        data = tif.pages[0].asarray()
        res = tif.pages[0].tags["XResolution"].value
    assert data[7, 0] == 0 and data[7, -1] == 255 and data[0, 0] == 0
    assert res[0] / res[1] == pytest.approx(1e4 / 50.0)


def test_output_paths_and_json(tmp_path: Path) -> None:
    paths = OutputPaths.for_slide(tmp_path, "slide1")
    assert paths.heatmap.name == "slide1.heatmap.tiff" and paths.metadata.name == "slide1.run.json"
    write_json(paths.metadata, {"a": float("nan"), "b": np.float32(0.5), "p": tmp_path})
    assert json.loads(paths.metadata.read_text()) == {"a": None, "b": 0.5, "p": str(tmp_path)}
