"""Ground truth loading: mask images at a stated or inferred scale, GeoJSON polygons with
holes and classes, and clear refusals for files that are not ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inference.core.geometry import Rect
from inference.evaluation.truth import TruthError, load_truth


def _square(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def _feature(rings: list[list[list[float]]], name: str = "Tumour") -> dict[str, object]:
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": rings},
        "properties": {"objectType": "annotation", "classification": {"name": name}},
    }


def test_mask_scale_is_inferred_from_its_size(tmp_path: Path) -> None:
    mask = np.zeros((50, 100), np.uint8)
    mask[10:20, 30:60] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    truth = load_truth(tmp_path / "m.png", (1000, 500))
    assert truth.l0_per_px == pytest.approx(10.0)
    assert truth.fraction_in(Rect(300, 100, 300, 100)) == 1.0
    assert truth.fraction_in(Rect(0, 0, 100, 100)) == 0.0
    assert truth.fraction_in(Rect(5000, 5000, 10, 10)) == 0.0


def test_mask_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((50, 50), np.uint8)).save(tmp_path / "square.png")
    with pytest.raises(TruthError, match=r"square\.png.*does not match the slide"):
        load_truth(tmp_path / "square.png", (1000, 500))


def test_geojson_polygons_with_holes_and_classes(tmp_path: Path) -> None:
    data = {
        "type": "FeatureCollection",
        "features": [
            _feature([_square(0, 0, 400, 400), _square(100, 100, 300, 300)]),
            _feature([_square(600, 0, 800, 200)], name="Stroma"),
        ],
    }
    path = tmp_path / "t.geojson"
    path.write_text(json.dumps(data))
    truth = load_truth(path, (1000, 500), class_name="tumour", l0_per_px=10)
    assert truth.mask.shape == (50, 100)
    # a pixel is inside when its centre is: exactly the covered pixel squares
    assert truth.mask.sum() == 40 * 40 - 20 * 20  # the tumour square less its hole; no stroma
    assert truth.mask[:40, :40].sum() == 40 * 40 - 20 * 20
    assert not truth.mask[10:30, 10:30].any()  # the hole stays empty
    assert not truth.mask[:, 60:].any()  # stroma filtered out
    everything = load_truth(path, (1000, 500), l0_per_px=10)
    assert everything.mask[:20, 60:80].all()


def test_resampling_to_another_grid(tmp_path: Path) -> None:
    path = tmp_path / "t.geojson"
    path.write_text(json.dumps([_feature([_square(0, 0, 200, 200)])]))
    truth = load_truth(path, (400, 400), l0_per_px=4)
    grid = truth.resampled((4, 4), 100.0)
    assert grid.tolist() == [[True, True, False, False]] * 2 + [[False] * 4] * 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"type": "Point"}', "expected a GeoJSON FeatureCollection"),
        ('{"type": "FeatureCollection", "features": 3}', "without a 'features' list"),
        (
            '[{"type": "Feature", "geometry": '
            '{"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}]',
            "feature 0: a ring has 2 points",
        ),
        (
            '[{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": '
            "[[[0, 0], [1e300, 1], [1, 1], [0, 0]]]}}]",
            "feature 0: coordinates must be finite",
        ),
        (
            '[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}}]',
            "no polygon features",
        ),
    ],
)
def test_bad_geojson_is_refused_with_the_reason(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    with pytest.raises(TruthError, match=message) as info:
        load_truth(path, (100, 100))
    assert "bad.geojson" in str(info.value)


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(TruthError, match="no such file"):
        load_truth(tmp_path / "nope.png", (10, 10))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(TruthError, match="unknown ground-truth type"):
        load_truth(tmp_path / "notes.txt", (10, 10))
    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(TruthError, match="not a readable image"):
        load_truth(tmp_path / "fake.png", (10, 10))


def _mask_png(path: Path, values: np.ndarray, mode: str | None = None) -> Path:
    image = Image.fromarray(values) if mode is None else Image.fromarray(values).convert(mode)
    image.save(path)
    return path


@pytest.mark.parametrize(
    ("stored", "encoding"),
    [
        (lambda m: m.astype(np.uint8) * 255, "0/255"),
        (lambda m: m.astype(np.uint8), "0/1"),
        (lambda m: m, "1-bit"),  # a boolean array is saved as a 1-bit PNG
    ],
)
def test_binary_masks_in_every_usual_encoding_load_the_same(
    tmp_path: Path, stored: object, encoding: str
) -> None:
    """0/1 masks (the usual segmentation format) were read as empty by `> 127`."""
    positive = np.zeros((50, 100), bool)
    positive[10:20, 30:60] = True
    path = _mask_png(tmp_path / "m.png", stored(positive))  # type: ignore[operator]
    truth = load_truth(path, (1000, 500))
    assert truth.encoding == encoding
    assert np.array_equal(truth.mask, positive)
    assert truth.positive_fraction == pytest.approx(300 / 5000)
    assert truth.labels is None and truth.note == ""


def test_label_mask_keeps_class_indices(tmp_path: Path) -> None:
    """PANDA's Radboud labels 0-5: positive is any class above background, and the
    class of each pixel is kept."""
    labels = np.zeros((50, 100), np.uint8)
    for cls in range(1, 6):
        labels[5 * cls : 5 * cls + 5, 10 * cls : 10 * cls + 10] = cls
    truth = load_truth(_mask_png(tmp_path / "l.png", labels), (1000, 500))
    assert truth.encoding == "labels 0-5"
    assert truth.labels is not None and np.array_equal(truth.labels, labels)
    assert np.array_equal(truth.mask, labels > 0)
    assert "label image" in truth.note


def test_palette_label_png_reads_indices_not_colours(tmp_path: Path) -> None:
    labels = np.zeros((50, 100), np.uint8)
    labels[:, 50:] = 3
    image = Image.fromarray(labels, mode="L").convert("P")
    image.putpalette([0, 0, 0, 200, 200, 200, 10, 250, 10, 250, 10, 10] + [0] * 756)
    image.save(tmp_path / "p.png")
    truth = load_truth(tmp_path / "p.png", (1000, 500))
    assert truth.labels is not None and set(np.unique(truth.labels)) == {0, 3}


def test_soft_edged_grey_mask_is_thresholded(tmp_path: Path) -> None:
    grey = np.tile(np.linspace(0, 255, 100).astype(np.uint8), (50, 1))
    truth = load_truth(_mask_png(tmp_path / "g.png", grey), (1000, 500))
    assert truth.encoding == "grey, thresholded at 128"
    assert np.array_equal(truth.mask, grey >= 128)


@pytest.mark.parametrize(("value", "meaning"), [(0, "no positive pixel"), (255, "every pixel")])
def test_a_mask_with_one_value_says_so(tmp_path: Path, value: int, meaning: str) -> None:
    flat = np.full((50, 100), value, np.uint8)
    truth = load_truth(_mask_png(tmp_path / "f.png", flat), (1000, 500))
    assert "single value" in truth.note and meaning in truth.note
