"""Synthetic slides: OpenSlide reads back what was rendered at every level, deterministically,
with ground truth that matches the pixels."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference.evaluation.truth import load_truth
from inference.slides import open_slide
from inference.slides.synth.layout import make_layout
from inference.slides.synth.noise import hash_uniform, value_noise
from inference.slides.synth.render import TileRenderer
from inference.slides.synth.writer import (
    SynthParams,
    pyramid_dimensions,
    truth_paths,
    write_synthetic_slide,
)

PARAMS = SynthParams(width=3000, height=2200, seed=5, mpp=0.5)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "slide.tiff"
    write_synthetic_slide(path, PARAMS)
    return path


def test_openslide_reads_it_as_generic_tiff_with_mpp(written: Path) -> None:
    with_source = open_slide(written)
    try:
        info = with_source.info
        assert info.vendor == "generic-tiff"
        assert info.mpp == pytest.approx(0.5)
        assert info.level_dimensions == pyramid_dimensions(3000, 2200)
        assert info.level_count == 3  # 3000 -> 750 -> 188
    finally:
        with_source.close()


def test_level0_reads_back_what_was_rendered(written: Path) -> None:
    renderer = TileRenderer(make_layout(3000, 2200, 5), 5, 0.5)
    source = open_slide(written)
    try:
        layout = renderer.layout
        ys, xs = np.nonzero(layout.truth_mask)
        l0_x, l0_y = (
            int(xs[len(xs) // 2]) * layout.l0_per_px,
            int(ys[len(ys) // 2]) * layout.l0_per_px,
        )
        for x, y, w, h in [(l0_x, l0_y, 300, 200), (0, 0, 256, 256), (2900, 2100, 100, 100)]:
            expected = renderer.render(x, y, w, h).astype(float)
            got = source.read_region(0, x, y, w, h).astype(float)
            assert np.abs(got - expected).mean() < 3.0  # JPEG at quality 85
    finally:
        source.close()


def test_coarser_levels_are_the_area_average_of_level0(written: Path) -> None:
    source = open_slide(written)
    try:
        full = source.read_region(0, 0, 0, 3000, 2200)
        for level in (1, 2):
            lv_w, lv_h = source.info.level_dimensions[level]
            factor = 4**level
            shrunk = cv2.resize(
                full[: lv_h * factor - factor, : lv_w * factor - factor],
                (lv_w - 1, lv_h - 1),
                interpolation=cv2.INTER_AREA,
            )
            got = source.read_region(level, 0, 0, lv_w - 1, lv_h - 1)
            assert np.abs(got.astype(float) - shrunk.astype(float)).mean() < 3.0
    finally:
        source.close()


def test_same_params_give_the_same_bytes(tmp_path: Path, written: Path) -> None:
    again = tmp_path / "again.tiff"
    write_synthetic_slide(again, PARAMS, workers=1)
    assert (
        hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(written.read_bytes()).digest()
    )
    other = tmp_path / "other.tiff"
    write_synthetic_slide(other, SynthParams(width=3000, height=2200, seed=6, mpp=0.5))
    assert other.read_bytes() != written.read_bytes()


def test_tiles_meet_without_seams() -> None:
    renderer = TileRenderer(make_layout(3000, 2200, 5), 5, 0.5)
    layout = renderer.layout
    ys, xs = np.nonzero(layout.tissue_mask)
    x, y = int(xs[len(xs) // 2]) * layout.l0_per_px, int(ys[len(ys) // 2]) * layout.l0_per_px
    whole = renderer.render(x, y, 512, 512).astype(int)
    for dx, dy in [(256, 0), (0, 256), (256, 256)]:
        part = renderer.render(x + dx, y + dy, 256, 256).astype(int)
        assert np.abs(whole[dy : dy + 256, dx : dx + 256] - part).max() <= 1


def test_ground_truth_matches_the_pixels(written: Path) -> None:
    mask_path, geojson_path = truth_paths(written)
    truth = load_truth(mask_path, (3000, 2200))
    assert truth.l0_per_px == 8
    assert 0.02 < truth.positive_fraction < 0.5
    polygons = load_truth(geojson_path, (3000, 2200), class_name="Tumour", l0_per_px=8)
    inter = (truth.mask & polygons.mask).sum()
    union = (truth.mask | polygons.mask).sum()
    assert inter / union > 0.97

    # tumour is dense with dark nuclei; tissue elsewhere is mostly pink stroma
    source = open_slide(written)
    try:
        grey = cv2.cvtColor(source.read_region(0, 0, 0, 3000, 2200), cv2.COLOR_RGB2GRAY)
    finally:
        source.close()
    rows, cols = truth.mask.shape
    small = cv2.resize(grey, (cols, rows), interpolation=cv2.INTER_AREA)
    layout = make_layout(3000, 2200, 5)
    normal = layout.tissue_mask & ~truth.mask
    assert small[truth.mask].mean() < small[normal].mean() - 25


def test_geojson_is_qupath_style(written: Path) -> None:
    data = json.loads(truth_paths(written)[1].read_text())
    assert data["type"] == "FeatureCollection" and data["features"]
    for feature in data["features"]:
        assert feature["geometry"]["type"] == "Polygon"
        ring = feature["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) >= 4
        assert feature["properties"]["objectType"] == "annotation"
        assert feature["properties"]["classification"]["name"] == "Tumour"


def test_an_interrupted_write_leaves_no_slide(tmp_path: Path) -> None:
    path = tmp_path / "broken.tiff"

    def stop(done: int, total: int) -> None:
        if done > 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_synthetic_slide(path, SynthParams(width=2048, height=2048, seed=1), progress=stop)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs",
    [{"width": 10}, {"height": 3_000_000}, {"mpp": 0.0}, {"tile": 100}, {"jpeg_quality": 0}],
)
def test_bad_params_are_refused(kwargs: dict[str, float]) -> None:
    base: dict[str, float] = {"width": 1000, "height": 1000}
    with pytest.raises(ValueError):
        SynthParams(**{**base, **kwargs})  # type: ignore[arg-type]


def test_noise_is_a_function_of_position_only() -> None:
    a = hash_uniform(1, np.arange(5), 3)
    assert np.array_equal(a, hash_uniform(1, np.arange(5), 3))
    assert not np.array_equal(a, hash_uniform(2, np.arange(5), 3))
    assert ((a >= 0) & (a < 1)).all()
    whole = value_noise(4, 100, 200, 64, 64, 7.0, stretch=3.0, angle=0.4)
    part = value_noise(4, 132, 232, 32, 32, 7.0, stretch=3.0, angle=0.4)
    assert np.abs(whole[32:, 32:] - part).max() < 1e-3
