"""The display adjustment: its lookup table, and figures made through it (Qt-free)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inference.core.geometry import Rect
from inference.slides import open_slide
from viewer.__main__ import main
from viewer.export.figure import region_compositor
from viewer.export.scene import FigureOptions
from viewer.tiles.adjustment import NEUTRAL, DisplayAdjustment, DisplayAdjustmentModel


def test_the_table_follows_the_formula() -> None:
    adjustment = DisplayAdjustment(brightness=0.1, contrast=1.5, gamma=0.5)
    v = np.arange(256) / 255
    expected = np.round(np.clip((v - 0.5) * 1.5 + 0.6, 0, 1) ** 0.5 * 255)
    assert np.array_equal(adjustment.lut(), expected.astype(np.uint8))
    assert NEUTRAL.is_identity and np.array_equal(NEUTRAL.lut(), np.arange(256))
    assert not adjustment.is_identity
    # brighter and more contrast: dark gets darker, light gets lighter, mid goes up
    contrast = DisplayAdjustment(contrast=2.0).lut()
    assert contrast[64] < 64 and contrast[192] > 192 and contrast[128] == 128
    assert DisplayAdjustment(gamma=0.5).lut()[128] > 128  # below 1 lightens


def test_pixels_are_adjusted_and_alpha_is_kept() -> None:
    adjustment = DisplayAdjustment(brightness=-0.2)
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(adjustment.apply(rgb), adjustment.lut()[rgb])
    bgrx = np.dstack([rgb, np.full((8, 8), 255, np.uint8)])
    out = adjustment.apply(bgrx)
    assert np.array_equal(out[..., :3], adjustment.lut()[rgb])
    assert (out[..., 3] == 255).all()  # Qt's RGB32 wants its X byte at 255
    assert NEUTRAL.apply(rgb) is rgb  # nothing done without an adjustment


@pytest.mark.parametrize(
    "values", [(1.5, 1.0, 1.0), (0.0, 0.1, 1.0), (0.0, 1.0, 9.0), (float("nan"), 1.0, 1.0)]
)
def test_out_of_range_is_refused(values: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="must be between"):
        DisplayAdjustment(*values)


def test_the_json_form_and_the_description() -> None:
    adjustment = DisplayAdjustment(0.1, 1.25, 0.8)
    assert DisplayAdjustment.from_dict(adjustment.to_dict()) == adjustment
    assert adjustment.describe() == "brightness +10 %, contrast x1.25, gamma 0.80"
    assert NEUTRAL.describe() == "none"
    with pytest.raises(ValueError):
        DisplayAdjustment.from_dict({"gamma": "bright"})


def test_the_model_announces_changes_and_clips() -> None:
    model = DisplayAdjustmentModel()
    seen: list[DisplayAdjustment] = []
    model.changed.connect(seen.append)
    model.update(brightness=0.3)
    model.update(brightness=0.3)  # no change: no event
    model.update(contrast=100.0)
    model.reset()
    assert seen == [
        DisplayAdjustment(0.3),
        DisplayAdjustment(0.3, 4.0),
        NEUTRAL,
    ]


def test_a_figure_applies_it_to_the_slide_only(synthetic_slide: Path) -> None:
    """At full resolution (no resampling) the adjusted figure is the table applied to
    the plain one, pixel for pixel."""
    adjustment = DisplayAdjustment(0.05, 1.3, 0.8)
    source = open_slide(synthetic_slide)
    try:
        region = Rect(1000, 800, 300, 200)
        bare = FigureOptions(scale_bar=False, legend=False)
        plain = region_compositor(source, [], region, options=bare).compose()
        adjusted = region_compositor(
            source, [], region, options=bare, adjustment=adjustment
        ).compose()
    finally:
        source.close()
    assert np.array_equal(adjusted, adjustment.lut()[plain])


def test_slidelens_export_takes_and_records_it(
    synthetic_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fig.png"
    args = ["export", str(synthetic_slide), "--mpp", "8", "--out", str(out), "--quiet"]
    assert main([*args, "--contrast", "1.5", "--gamma", "0.8"]) == 0
    doc = json.loads(out.with_name("fig.png.json").read_text("utf-8"))
    recorded = doc["slide"]["display_adjustment"]
    assert DisplayAdjustment.from_dict(recorded) == DisplayAdjustment(0.0, 1.5, 0.8)
    assert main([*args]) == 0
    doc = json.loads(out.with_name("fig.png.json").read_text("utf-8"))
    assert doc["slide"]["display_adjustment"] is None
    assert main([*args, "--gamma", "12"]) == 2
    assert "gamma must be between 0.2 and 5" in capsys.readouterr().err
