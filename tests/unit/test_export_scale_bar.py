"""The Qt-free scale bar: round lengths, exact bar pixels, units, scaling."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.export.scale_bar_render import (
    MAX_BAR_PX,
    bottom_left,
    bottom_right,
    render_scale_bar,
    scale_bar_label,
    scale_bar_spec,
)


@pytest.mark.parametrize(
    ("l0_per_px", "mpp", "length", "label"),
    [
        (1.0, 0.5, 50.0, "50 µm"),  # 0.5 µm/px: at most 80 µm fits in 160 px
        (4.0, 0.25, 100.0, "100 µm"),  # 1 µm/px
        (40.0, 0.5, 2000.0, "2 mm"),  # 20 µm/px
        (3.0, None, 200.0, "200 px"),  # no pixel size: level-0 pixels
    ],
)
def test_round_lengths_and_labels(
    l0_per_px: float, mpp: float | None, length: float, label: str
) -> None:
    spec = scale_bar_spec(l0_per_px, mpp)
    assert spec is not None
    assert (spec.length, spec.label) == (length, label)
    unit_per_px = l0_per_px * (mpp or 1.0)
    assert spec.bar_px == pytest.approx(length / unit_per_px)
    assert MAX_BAR_PX / 2.5 <= spec.bar_px <= MAX_BAR_PX


def test_labels() -> None:
    assert scale_bar_label(250, True) == "250 µm"
    assert scale_bar_label(1000, True) == "1 mm"
    assert scale_bar_label(0.5, True) == "0.5 µm"
    assert scale_bar_label(500, False) == "500 px"


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_the_bar_pixels_are_exactly_its_length(scale: float) -> None:
    bar = render_scale_bar(1.3, 0.5, scale)  # 0.65 µm/px
    assert bar is not None
    x, y, w, h = bar.bar_rect
    assert w == round(bar.spec.bar_px) and h == round(4 * scale)
    assert (bar.rgba[y : y + h, x : x + w] == (20, 20, 20, 255)).all()
    # nothing else in the image is a full-width dark row that long
    dark = (bar.rgba[..., :3] < 60).all(axis=2) & (bar.rgba[..., 3] == 255)
    assert dark[y : y + h, x - 1].sum() == 0 and dark[y : y + h, x + w].sum() == 0
    assert bar.height == round(30 * scale)
    assert bar.width >= w + 2 * round(8 * scale)
    # translucent white box with rounded (transparent) corners
    assert bar.rgba[0, 0, 3] == 0 and bar.rgba[bar.height // 2, 2, 3] == 200
    # the label is drawn: dark pixels above the bar
    assert dark[:y].any()


def test_no_bar_when_it_cannot_fit() -> None:
    assert render_scale_bar(1e-6, 0.5) is not None  # tiny lengths still round nicely
    assert scale_bar_spec(1.0, 0.5, max_bar_px=5) is not None  # 2 µm: 4 px
    assert scale_bar_spec(1.0, 0.5, max_bar_px=3) is None  # 1 µm: 2 px, too short
    assert render_scale_bar(1.0, 0.5, scale=0.015) is None
    with pytest.raises(ValueError):
        scale_bar_spec(0.0, 0.5)


def test_corner_placement() -> None:
    assert bottom_left(800, 600, 120, 30) == (14, 600 - 30 - 14)
    assert bottom_right(800, 600, 200, 90) == (800 - 200 - 14, 600 - 90 - 14)
    assert bottom_left(800, 600, 240, 60, scale=2.0) == (28, 600 - 60 - 28)


def test_rendering_is_deterministic() -> None:
    a = render_scale_bar(2.0, 0.5)
    b = render_scale_bar(2.0, 0.5)
    assert a is not None and b is not None
    assert np.array_equal(a.rgba, b.rgba)
