"""Tissue mask: the background rule, clean-up, chunked reading, and tissue fractions."""

from __future__ import annotations

import numpy as np
import pytest

from inference.core.geometry import Rect
from inference.engine import tissue
from inference.engine.tissue import background_rule, tissue_mask
from tests.helpers.slides import WHITE, ArraySource


def _slide(levels: int = 3) -> ArraySource:
    """1024 x 768: tissue in x 256..768, y 128..640, a pin-hole in it, a speck of dust."""
    img = np.full((768, 1024, 3), WHITE, np.uint8)
    rng = np.random.default_rng(0)
    img[128:640, 256:768] = np.clip(
        np.array([190, 100, 160]) + rng.integers(-30, 30, (512, 512, 3)), 0, 255
    )
    img[300:310, 400:410] = WHITE  # pin-hole (a fraction of a mask pixel)
    img[32:48, 64:80] = (120, 40, 110)  # a speck of dust on the glass
    return ArraySource(img, levels=levels)


def test_background_is_near_white_and_unsaturated() -> None:
    pixels = np.array(
        [
            [WHITE, WHITE, WHITE],  # glass
            [225, 225, 225],  # light grey glass
            [235, 200, 220],  # pale eosin: bright but saturated -> tissue
            [90, 90, 90],  # dark debris: unsaturated but not white -> tissue
            [150, 60, 140],  # haematoxylin/eosin
        ],
        np.uint8,
    )[None]
    assert background_rule(pixels)[0].tolist() == [True, True, False, False, False]


def test_mask_finds_tissue_drops_specks_and_fills_holes() -> None:
    mask = tissue_mask(_slide())
    assert mask.l0_per_px == 32.0 and mask.mask.shape == (24, 32)
    expected = np.zeros((24, 32), bool)
    expected[4:20, 8:24] = True
    np.testing.assert_array_equal(mask.mask, expected)
    assert mask.tissue_fraction == pytest.approx(expected.mean())


def test_fractions_of_rectangles() -> None:
    mask = tissue_mask(_slide())
    assert mask.fraction_in(Rect(300, 200, 224, 224)) == 1.0
    assert mask.fraction_in(Rect(0, 0, 200, 100)) == 0.0
    assert mask.fraction_in(Rect(128, 128, 256, 64)) == pytest.approx(0.5)
    assert mask.fraction_in(Rect(900, 700, 256, 256)) == 0.0  # mostly outside the slide
    rects = np.array([[300, 200, 224, 224], [0, 0, 200, 100]], float)
    assert mask.fractions_in(rects).tolist() == [1.0, 0.0]


def test_single_level_slide_is_read_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = tissue_mask(_slide(levels=1))
    monkeypatch.setattr(tissue, "_CHUNK_LV_PX", 100)
    source = _slide(levels=1)
    chunked = tissue_mask(source)
    assert source.reads > 20
    np.testing.assert_array_equal(chunked.mask, whole.mask)


def test_mask_side_is_bounded() -> None:
    img = np.full((100, 8000, 3), WHITE, np.uint8)
    mask = tissue_mask(ArraySource(img, levels=1), max_side=100)
    assert mask.l0_per_px == 80.0 and mask.mask.shape == (2, 100)
    assert not mask.mask.any()
