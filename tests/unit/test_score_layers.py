"""Score layers (attention, similarity): rank percentiles, raw values, the geometry of the
result they belong to, and the scaling setting."""

from __future__ import annotations

import numpy as np
import pytest

from inference.engine.patches import PatchGrid
from inference.results.store import ResultGrid
from viewer.layers.heatmap import HeatmapLayer
from viewer.layers.scores import (
    AttentionLayer,
    ScoreGrid,
    SimilarityLayer,
    rank_percentiles,
)

NAN = np.nan


def test_rank_percentiles_share_ties_and_keep_nan() -> None:
    values = np.array([[0.1, 0.5, NAN], [0.5, 0.9, 0.3]], np.float32)
    out = rank_percentiles(values)
    # finite values sorted: 0.1, 0.3, 0.5, 0.5, 0.9 -> ranks 0, 1, 2.5, 2.5, 4 of 4
    assert out[0, 0] == pytest.approx(0.0)
    assert out[1, 2] == pytest.approx(0.25)
    assert out[0, 1] == pytest.approx(0.625) and out[1, 0] == pytest.approx(0.625)
    assert out[1, 1] == pytest.approx(1.0)
    assert np.isnan(out[0, 2])
    assert rank_percentiles(np.array([NAN, 2.0]))[1] == 1.0
    assert np.isnan(rank_percentiles(np.array([NAN, NAN]))).all()


def grid() -> PatchGrid:
    return PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(0, 0), p_cols=3, p_rows=2)


def test_score_grid_lines_up_with_the_result_grid() -> None:
    result = ResultGrid(grid(), ("a", "b"))
    scores = ScoreGrid(grid(), np.zeros((2, 3)), ("attention",))
    assert scores.raster_geometry() == result.raster_geometry()
    assert scores.raster_shape == result.raster_shape
    with pytest.raises(ValueError, match="grid of 2 x 3"):
        ScoreGrid(grid(), np.zeros((3, 3)), ("attention",))


def test_attention_layer_switches_between_raw_and_percentile() -> None:
    raw = np.array([[0.01, 0.02, NAN], [0.03, 0.94, NAN]], np.float32)
    layer = AttentionLayer("head attention", ScoreGrid(grid(), raw, ("attention",)))
    assert isinstance(layer, HeatmapLayer) and layer.kind == "attention"
    assert layer.scaling == "raw"
    assert layer.value_range == pytest.approx((0.01, 0.94))
    assert layer.values_at(150, 150) == pytest.approx({"attention": 0.94})
    events: list[str] = []
    layer.changed.connect(events.append)
    before = layer.colour_image().rgba.copy()
    layer.scaling = "percentile"
    assert events == ["scaling"] and layer.value_range == (0.0, 1.0)
    assert layer.values_at(50, 150) == pytest.approx({"attention": 2 / 3})
    assert layer.scores.raw_at(50, 150) == pytest.approx([0.03])
    after = layer.colour_image().rgba
    assert not np.array_equal(before, after)  # the cold patches warm up
    assert after[0, 2, 3] == 0  # no value: transparent
    assert layer.settings()["scaling"] == "percentile"
    assert "rank percentile" in layer.legend().label  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="scaling"):
        layer.scaling = "log"  # type: ignore[assignment]


def test_similarity_layer_is_its_own_kind() -> None:
    layer = SimilarityLayer(
        "similar", ScoreGrid(grid(), np.ones((2, 3)), ("cosine similarity",), "percentile")
    )
    assert layer.kind == "similarity" and layer.value_range == (0.0, 1.0)
