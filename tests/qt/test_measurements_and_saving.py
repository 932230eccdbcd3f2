"""Annotations > Export measurements in the window, and where save dialogs open: in the
slide's folder (or where the user saved last) with a name that says slide and model."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QFileDialog
from pytestqt.qtbot import QtBot

from inference.engine.patches import PatchGrid
from inference.results.store import ResultGrid
from tests.qt.qt_helpers import TIMEOUT_MS, open_slide_in
from viewer.annotations import DEFAULT_CLASSES, Annotation
from viewer.layers.heatmap import HeatmapLayer
from viewer.qt import save_dialog
from viewer.qt.main_window import MainWindow
from viewer.save_locations import SaveFolders


class Dialogs:
    """Answers save dialogs with ``answer`` and records where each one opened."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened_at: list[Path] = []
        self.answer: Path | None = None
        monkeypatch.setattr(QFileDialog, "getSaveFileName", self._save)
        monkeypatch.setattr(save_dialog, "SAVE_FOLDERS", SaveFolders())

    def _save(self, _parent: object, _title: str, start: str, _filter: str) -> tuple[str, str]:
        self.opened_at.append(Path(start))
        return (str(self.answer) if self.answer is not None else "", "")


@pytest.fixture
def dialogs(monkeypatch: pytest.MonkeyPatch) -> Dialogs:
    return Dialogs(monkeypatch)


def heatmap_over(window: MainWindow, model: str) -> HeatmapLayer:
    """A visible heatmap over the open slide: P(tumour) rises from left to right."""
    info = window.current.source.info  # type: ignore[union-attr]
    cols, rows = info.dimensions[0] // 512 + 1, info.dimensions[1] // 512 + 1
    grid = PatchGrid(l0_patch=512, l0_stride=512, l0_origin=(0, 0), p_cols=cols, p_rows=rows)
    result = ResultGrid(grid, ["other", "tumour"])
    tumour = np.tile(np.linspace(0, 1, cols, dtype=np.float32), (rows, 1))
    probs = np.stack([1 - tumour, tumour])
    result.patch_probs[...] = probs
    result.sums[...] = probs
    result.weights[...] = 1.0
    layer = HeatmapLayer(f"{model} on the whole slide", result, provenance={"model": model})
    window.canvas.layers.add(layer)
    return layer


def test_export_measurements_writes_one_row_per_annotation_with_heatmap_means(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tmp_path: Path, dialogs: Dialogs
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    ctl = window.annotations
    (menu,) = [a.menu() for a in window.menuBar().actions() if a.text() == "A&nnotations"]
    assert ctl.measurements_action in menu.actions() and ctl.measurements_action.isEnabled()
    assert ctl.measurements_action.text() == "Export &measurements (CSV)…"
    annotations = ctl.annotations
    assert annotations is not None
    left = Annotation.rectangle(0, 0, 512, 512, classification=DEFAULT_CLASSES[0], note="n")
    right = Annotation.points([(4000, 100)])
    annotations.add_many([left, right])
    heatmap_over(window, "demo-x")
    dialogs.answer = tmp_path / "table.csv"
    with qtbot.waitSignal(ctl.measurements.finished, timeout=TIMEOUT_MS) as signal:
        ctl.measurements.choose()
    # the dialog opened beside the slide, named after the slide and the heatmap's model
    assert dialogs.opened_at == [synthetic_slide.parent / "synthetic.demo-x.measurements.csv"]
    assert signal.args == [tmp_path / "table.csv"]
    with (tmp_path / "table.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == [left.id, right.id]
    column = "demo-x on the whole slide: mean tumour probability"
    assert float(rows[0][column]) == pytest.approx(0.0)  # the first column of the heatmap
    assert float(rows[1][column]) == pytest.approx(7 / 8)  # column 7 of 0..8
    assert rows[0]["area_um2"] == f"{512 * 512 * 0.25:.2f}"  # the synthetic slide: 0.5 µm/px
    assert rows[0]["class"] == "Tumour" and rows[0]["slide"] == synthetic_slide.name
    assert "2 annotations" in ctl.measurements.last_message
    dialogs.answer = None
    ctl.measurements.choose()  # the next dialog opens where the user saved
    assert dialogs.opened_at[-1] == tmp_path / "synthetic.demo-x.measurements.csv"


def test_geojson_export_opens_beside_the_slide_named_after_it(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, dialogs: Dialogs
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    window.annotations.files.choose_export()  # cancelled: nothing written
    assert dialogs.opened_at == [synthetic_slide.parent / "synthetic.annotations.geojson"]
