"""GeoJSON counts from the slide's bounds corner, as QuPath does for a slide that states
bounds (MIRAX, Hamamatsu VMS): model-result tiles are written from it, and ground-truth
polygons are read from it, so both line up with the slide in QuPath and in SlideLens."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from inference.batch.one_slide import infer_slide
from inference.batch.settings import SlideSettings
from inference.evaluation.class_truth import load_class_truth
from inference.evaluation.truth import load_truth
from inference.models import load_model
from tests.helpers.models import write_model_folder
from tests.helpers.slides import ArraySource, tissue_image

ORIGIN = (256.0, 128.0)
BOUNDS = {
    "openslide.bounds-x": "256",
    "openslide.bounds-y": "128",
    "openslide.bounds-width": "512",
    "openslide.bounds-height": "384",
}


def _bounded_source() -> ArraySource:
    source = ArraySource(tissue_image(1024, 768, seed=2), mpp=0.5, name="bounded.mrxs")
    source._info = replace(source.info, properties=BOUNDS)
    return source


def test_the_bounds_origin_is_the_bounds_corner_or_zero() -> None:
    assert _bounded_source().info.l0_bounds_origin == ORIGIN
    assert ArraySource(tissue_image(64, 64)).info.l0_bounds_origin == (0.0, 0.0)


def test_infer_writes_tiles_from_the_bounds_corner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _bounded_source()
    monkeypatch.setattr("inference.slides.open_slide", lambda _path: source)
    model = load_model(write_model_folder(tmp_path / "model"), device="cpu")
    run = infer_slide(
        Path("bounded.mrxs"), model, SlideSettings(device="cpu", no_cache=True), "cpu", tmp_path
    )
    assert run.result is not None
    rects, _probs = run.result.patch_table()
    features = json.loads((tmp_path / "bounded.geojson").read_text())["features"]
    assert len(features) == len(rects) > 0
    for feature, (l0_x, l0_y, w, h) in zip(features, rects.tolist(), strict=True):
        ring = feature["geometry"]["coordinates"][0]
        assert ring[0] == [l0_x - ORIGIN[0], l0_y - ORIGIN[1]]
        assert ring[2] == [l0_x - ORIGIN[0] + w, l0_y - ORIGIN[1] + h]


def _square(tmp_path: Path, name: str = "tumour") -> Path:
    """A QuPath-style annotation: a 100 x 100 square at QuPath's (0, 0)."""
    ring = [[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]
    feature = {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"classification": {"name": name}},
    }
    path = tmp_path / "truth.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    return path


def test_geojson_truth_is_read_from_the_bounds_corner(tmp_path: Path) -> None:
    path = _square(tmp_path)
    truth = load_truth(path, (1024, 768), l0_per_px=4.0, l0_origin=ORIGIN)
    inside = (int((ORIGIN[1] + 50) / 4), int((ORIGIN[0] + 50) / 4))
    assert truth.mask[inside] and not truth.mask[12, 12]
    assert truth.mask.sum() == 25 * 25
    plain = load_truth(path, (1024, 768), l0_per_px=4.0)
    assert plain.mask[12, 12] and not plain.mask[inside]

    classes = load_class_truth(
        path, (1024, 768), ("other", "tumour"), l0_per_px=4.0, l0_origin=ORIGIN
    )
    labels = classes.label_image
    assert labels[inside] == 1 and labels[12, 12] == 0
    assert np.count_nonzero(labels == 1) == 25 * 25
