"""A one-output model's GeoJSON export: the class applies at or above the threshold; below
it the tile is unclassified; the probability is in ``measurements`` either way."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from inference.engine.patches import PatchGrid
from inference.results.exports import geojson_features, write_geojson
from inference.results.store import ResultGrid

PROBS = (0.02, 0.49, 0.5, 0.97)


def one_output_result(probs: tuple[float, ...] = PROBS) -> ResultGrid:
    grid = PatchGrid(l0_patch=64, l0_stride=64, l0_origin=(0, 0), p_cols=len(probs), p_rows=1)
    result = ResultGrid(grid, ["tumour"])
    values = np.array(probs, np.float32).reshape(1, 1, len(probs))  # (classes, rows, cols)
    result.patch_probs[...] = values
    result.sums[...] = values
    result.weights[...] = 1.0
    return result


def _classes(features: list[dict[str, object]]) -> list[str | None]:
    out = []
    for feature in features:
        props = feature["properties"]
        assert isinstance(props, dict)
        cls = props.get("classification")
        out.append(cls["name"] if isinstance(cls, dict) else None)
    return out


def test_one_output_is_classified_only_at_or_above_the_threshold() -> None:
    features = geojson_features(one_output_result())
    assert _classes(features) == [None, None, "tumour", "tumour"]
    measured = [f["properties"]["measurements"]["prob_tumour"] for f in features]  # type: ignore[index]
    assert measured == list(PROBS)


def test_the_cards_threshold_is_used(tmp_path: Path) -> None:
    path = tmp_path / "tiles.geojson"
    assert write_geojson(path, one_output_result(), threshold=0.9) == len(PROBS)
    features = json.loads(path.read_text())["features"]
    assert _classes(features) == [None, None, None, "tumour"]


def test_two_classes_still_take_the_most_likely() -> None:
    grid = PatchGrid(l0_patch=64, l0_stride=64, l0_origin=(0, 0), p_cols=2, p_rows=1)
    result = ResultGrid(grid, ["other", "tumour"])
    values = np.array([[[0.9, 0.3]], [[0.1, 0.7]]], np.float32)  # (classes, rows, cols)
    result.patch_probs[...] = values
    result.sums[...] = values
    result.weights[...] = 1.0
    assert _classes(geojson_features(result, threshold=0.99)) == ["other", "tumour"]
