"""Run by ``test_hidpi.py`` in a fresh interpreter, since the device pixel ratio must be
set (``QT_SCALE_FACTOR``) before the QApplication exists.

``python -m tests.qt.hidpi_probe SLIDE`` opens SLIDE in the main window, zooms to the
``1`` preset (1:1) and prints one JSON object: the device pixel ratio, the level and
zoom chosen, the status bar's magnification and zoom, and how a device-pixel grab of
the canvas compares with the slide's level-0 pixels and with the exported view.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtWidgets import QApplication

TIMEOUT_S = 30.0


def _wait(app: QApplication, ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.005)


def _settle(app: QApplication, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.005)


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)


def main(slide: Path) -> dict[str, object]:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    from tests.qt.qt_helpers import fit_on_screen, grab
    from viewer.export.figure import compose_view
    from viewer.qt.main_window import MainWindow
    from viewer.settings import Settings

    window = MainWindow(Settings())
    window.show()
    fit_on_screen(window, 600, 400)
    _settle(app, 0.2)
    window.open_path(slide)
    _wait(app, lambda: window.current is not None, "the slide to open")
    assert window.current is not None
    source = window.current.source
    canvas, viewport = window.canvas, window.canvas.viewport
    window.overview.hide()  # a child widget over the canvas
    canvas.show_scale_bar = False

    window.menus.one_to_one_action.trigger()
    # put a whole level-0 pixel at the top-left device pixel
    scr_w, scr_h = viewport.scr_size
    viewport.center_on(1000 + scr_w / 2 / viewport.scale, 700 + scr_h / 2 / viewport.scale)
    transform = viewport.transform()
    _wait(app, canvas.visible_tiles_ready, "sharp tiles at 1:1")
    _settle(app, 0.3)  # the smooth paint once the view has settled
    assert canvas.plan is not None and canvas.grids is not None
    level = canvas.plan.level
    shot = grab(window)  # device pixels
    dev_h, dev_w = shot.shape[:2]
    l0_x, l0_y = round(transform.l0_x), round(transform.l0_y)
    bgrx = source.read_region_bgrx(0, l0_x, l0_y, dev_w, dev_h)
    slide_rgb = np.ascontiguousarray(bgrx[..., 2::-1])
    on_slide = _diff(shot, slide_rgb)
    shifted = _diff(shot[:, 1:], slide_rgb[:, :-1])

    # the exported view at the screen's ratio, scale bar and all, is the screen
    canvas.show_scale_bar = True
    canvas.update()
    _settle(app, 0.2)
    with_bar = grab(window)
    export = compose_view(
        source,
        canvas.layers,
        viewport.transform(),
        (canvas.width(), canvas.height()),
        show_scale_bar=True,
        show_legend=False,
        pixel_ratio=canvas.devicePixelRatioF(),
    )
    export_diff = _diff(with_bar, export) if export.shape == with_bar.shape else None
    status = window.status_labels
    status.show_view(canvas, True)
    labels = status.magnification_label.text(), status.zoom_label.text()
    ratio = canvas.devicePixelRatioF()
    # the 20x preset on a 0.5 µm/px slide: one slide pixel per device pixel again
    viewport.set_scale(0.1)
    window.set_magnification(20.0)
    scale_at_20x = viewport.transform().scale * ratio

    # halfway out: the level of 2 level-0 px per device px (1 per logical px)
    viewport.set_scale(0.5 / ratio)
    assert canvas.plan is not None
    half_downsample = canvas.grids.levels[canvas.plan.level].downsample

    result: dict[str, object] = {
        "device_pixel_ratio": canvas.devicePixelRatioF(),
        "canvas_size": [canvas.width(), canvas.height()],
        "grab_size": [dev_w, dev_h],
        "level": level,
        "level_downsample": canvas.grids.levels[level].downsample,
        "dev_scale": transform.scale * ratio,
        "magnification_label": labels[0],
        "zoom_label": labels[1],
        "dev_scale_at_20x": scale_at_20x,
        "slide_diff_max": int(on_slide.max()),
        "slide_diff_mean": float(on_slide.mean()),
        "shifted_diff_mean": float(shifted.mean()),
        "export_size": [int(export.shape[1]), int(export.shape[0])],
        "export_diff_max": None if export_diff is None else int(export_diff.max()),
        "export_diff_mean": None if export_diff is None else float(export_diff.mean()),
        "half_zoom_downsample": half_downsample,
    }
    window.close()
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))), flush=True)
