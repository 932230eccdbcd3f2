"""A HiDPI screen (``QT_SCALE_FACTOR=2``) is shown per device pixel: at the ``1`` preset
one slide pixel is one device pixel, read from level 0; the magnification and zoom say
so; the exported view at the screen's ratio is what the screen shows.

The scale factor must be set before the QApplication exists, so the window runs in a
fresh interpreter (:mod:`tests.qt.hidpi_probe`) and reports back as JSON; outlines are
checked here, painted on an image with a device pixel ratio of 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hidpi_report(synthetic_slide: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "QT_SCALE_FACTOR": "2",
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.qt.hidpi_probe", str(synthetic_slide)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_one_to_one_is_one_slide_pixel_per_device_pixel(hidpi_report: dict[str, Any]) -> None:
    report = hidpi_report
    assert report["device_pixel_ratio"] == 2.0
    canvas_w, canvas_h = report["canvas_size"]
    assert report["grab_size"] == [2 * canvas_w, 2 * canvas_h]
    assert report["dev_scale"] == pytest.approx(1.0)
    # level 0, each device pixel exactly its slide pixel (not a 2x2 block of it)
    assert report["level"] == 0
    assert report["slide_diff_max"] == 0
    assert report["shifted_diff_mean"] > 1.0  # a grab one pixel off would not pass
    # between levels too: half zoom reads the 2x level, not the 4x one
    assert report["half_zoom_downsample"] == pytest.approx(2.0)


def test_magnification_and_zoom_count_device_pixels(hidpi_report: dict[str, Any]) -> None:
    # the synthetic slide is 0.5 µm/px: one slide pixel per device pixel is 20x, both
    # ways round (the label at 1:1, the zoom of the 20x preset)
    assert hidpi_report["magnification_label"] == "20.0x"
    assert hidpi_report["zoom_label"] == "zoom 100%"
    assert hidpi_report["dev_scale_at_20x"] == pytest.approx(1.0)


def test_the_exported_view_is_what_the_screen_shows(hidpi_report: dict[str, Any]) -> None:
    assert hidpi_report["export_size"] == hidpi_report["grab_size"]
    # slide pixels, scale bar and all; 1 for Qt's and PIL's blending of the bar's box
    assert hidpi_report["export_diff_max"] is not None
    assert hidpi_report["export_diff_max"] <= 3
    assert hidpi_report["export_diff_mean"] < 0.05


def test_outlines_keep_their_width_on_a_hidpi_screen(qapp: object) -> None:
    """An annotation outline is 2 screen px wide: 4 device px at a ratio of 2 (what an
    export at that ratio draws), not the 2 device px of a bare cosmetic pen."""
    from PySide6.QtGui import QColor, QImage, QPainter

    from inference.core.geometry import ViewTransform
    from viewer.annotations import Annotation, AnnotationClass, AnnotationSet
    from viewer.layers.annotation_layer import AnnotationLayer
    from viewer.qt.canvas.annotation_painter import LINE_WIDTH, paint_annotation_layer

    red = AnnotationClass("Tumour", (255, 0, 0))
    layer = AnnotationLayer(
        AnnotationSet("s", annotations=[Annotation.rectangle(20, 20, 80, 80, classification=red)])
    )
    layer.show_labels = False
    layer.fill_alpha = 0
    widths: dict[float, int] = {}
    for ratio in (1.0, 2.0):
        image = QImage(round(100 * ratio), round(100 * ratio), QImage.Format.Format_RGB32)
        image.setDevicePixelRatio(ratio)
        image.fill(QColor(255, 255, 255))
        painter = QPainter(image)
        paint_annotation_layer(painter, layer, ViewTransform(0, 0, 1.0), (100, 100))
        painter.end()
        column = [image.pixelColor(round(50 * ratio), y) for y in range(image.height())]
        # the top edge (at y = 20 screen px), in device px
        top = round(35 * ratio)
        widths[ratio] = sum(1 for c in column[:top] if c.red() > 150 and c.green() < 150)
    assert widths[1.0] == pytest.approx(LINE_WIDTH, abs=1)
    assert widths[2.0] == pytest.approx(2 * widths[1.0], abs=1)
