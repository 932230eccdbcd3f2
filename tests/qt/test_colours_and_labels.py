"""What the window shows of colours and labels: each role its own colour (Tumour,
unclassified, ground truth), QuPath's "Tumor" read as our Tumour with its spelling kept
visible, and a cached heatmap's state in the Layers panel, not in its legend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from inference.core.palette import GROUND_TRUTH_COLOUR, TUMOUR_COLOUR, UNCLASSIFIED_COLOUR
from inference.engine.patches import PatchGrid
from inference.results.store import ResultGrid
from inference.slides.synth.writer import truth_paths
from tests.qt.qt_helpers import TIMEOUT_MS, open_slide_in
from viewer.layers.base import LayerStack
from viewer.layers.heatmap import HeatmapLayer
from viewer.layers.masks import MaskLayer
from viewer.qt.main_window import MainWindow
from viewer.qt.panels.layers import LayersPanel


def test_truth_tumour_and_unclassified_are_three_colours(
    qtbot: QtBot, window: MainWindow, synthetic_slide: Path, tmp_path: Path
) -> None:
    open_slide_in(qtbot, window, synthetic_slide)
    window.analysis.load_truth(truth_paths(synthetic_slide)[0])
    qtbot.waitUntil(
        lambda: any(isinstance(x, MaskLayer) for x in window.canvas.layers), timeout=TIMEOUT_MS
    )
    (truth,) = [x for x in window.canvas.layers if isinstance(x, MaskLayer)]
    assert truth.colour == GROUND_TRUTH_COLOUR
    ring = [[100, 100], [300, 100], [300, 300], [100, 100]]
    qupath = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": "00000000-0000-4000-8000-000000000001",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "objectType": "annotation",
                    "classification": {"name": "Tumor", "color": [200, 0, 0]},
                },
            },
            {
                "type": "Feature",
                "id": "00000000-0000-4000-8000-000000000002",
                "geometry": {"type": "Point", "coordinates": [50, 50]},
                "properties": {"objectType": "annotation"},
            },
        ],
    }
    path = tmp_path / "qupath.geojson"
    path.write_text(json.dumps(qupath))
    ctl = window.annotations
    assert ctl.import_file(path) == 2
    annotations = ctl.annotations
    assert annotations is not None
    tumour, unclassified = annotations.annotations()
    assert (tumour.class_name, tumour.colour) == ("Tumour", TUMOUR_COLOUR)
    assert unclassified.colour == UNCLASSIFIED_COLOUR
    assert len({truth.colour, tumour.colour, unclassified.colour}) == 3
    # one Tumour class, the file's spelling in its tooltip and in the import message
    combo = ctl.panel.class_combo
    names = [combo.itemText(i) for i in range(combo.count())]
    assert "Tumor" not in names and names.count("Tumour") == 1
    tip = combo.itemData(combo.findData("Tumour"), Qt.ItemDataRole.ToolTipRole)
    assert "'Tumor'" in tip
    assert "'Tumor' as Tumour" in ctl.last_message
    cell = ctl.panel.table.item(0, 1)
    assert cell is not None and "'Tumor'" in cell.toolTip()


def test_a_cached_layer_says_so_in_the_panel_not_in_its_legend(qtbot: QtBot) -> None:
    grid = PatchGrid(l0_patch=100, l0_stride=100, l0_origin=(0, 0), p_cols=2, p_rows=1)
    result = ResultGrid(grid, ["other", "tumour"])
    result.sums[...] = np.float32(0.5)
    result.weights[...] = 1.0
    meta = {"model": "demo", "scope": "slide", "from_cache": True}
    layer = HeatmapLayer("demo on the whole slide", result, provenance=meta)
    layers = LayerStack()
    panel = LayersPanel(layers)
    qtbot.addWidget(panel)
    layers.add(layer)
    item = panel.item_of(layer)
    assert item is not None and not item.icon().isNull()
    assert "Restored from the result cache" in item.toolTip()
    assert layer.legend().title == "demo on the whole slide"
