"""The Explain panel: choose model, method (and a second one to compare), class and layer;
see the patch, its CAM with a colour scale, the class scores and the provenance (the
colours' range said in words); pin the CAM as a layer.  Progress counts passes of the
model over the patches, named as ``slidelens explain`` names them."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import qtawesome as qta
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from inference.explain.progress import patch_count
from viewer.layers.colormaps import apply_colormap

if TYPE_CHECKING:
    from inference.explain.requests import MethodInfo

#: Shown before the worker has said which methods a model supports.
DEFAULT_METHODS: tuple[tuple[str, str], ...] = (
    ("gradcam", "Grad-CAM"),
    ("gradcam++", "Grad-CAM++"),
    ("xgradcam", "XGrad-CAM"),
    ("layercam", "Layer-CAM"),
    ("hirescam", "HiRes-CAM"),
    ("eigencam", "Eigen-CAM"),
    ("scorecam", "Score-CAM"),
    ("saliency", "Saliency"),
    ("integrated-gradients", "Integrated gradients"),
    ("occlusion", "Occlusion"),
)
PREVIEW_PX = 220
#: Height of the colour scale under a CAM thumbnail, in px.
SCALE_BAR_PX = 10


def rgb_pixmap(rgb: np.ndarray) -> QPixmap:
    h, w = rgb.shape[:2]
    data = np.ascontiguousarray(rgb)
    return QPixmap.fromImage(QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


class ColourScale(QWidget):
    """The colours of a CAM thumbnail from 0 to the top of its range, with both ends
    labelled in raw map units."""

    def __init__(self, width: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QLabel()
        self.bar.setFixedSize(width, SCALE_BAR_PX)
        self.low = QLabel()
        self.high = QLabel()
        self.high.setAlignment(Qt.AlignmentFlag.AlignRight)
        for label in (self.low, self.high):
            font = label.font()
            font.setPointSizeF(max(6.0, font.pointSizeF() - 1.5))
            label.setFont(font)
        ends = QHBoxLayout()
        ends.setContentsMargins(0, 0, 0, 0)
        ends.addWidget(self.low)
        ends.addStretch(1)
        ends.addWidget(self.high)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        layout.addWidget(self.bar)
        layout.addLayout(ends)
        self.setFixedWidth(width)

    def show_scale(self, colormap: str, vmax: float) -> None:
        width = self.bar.width()
        values = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (SCALE_BAR_PX, 1))
        rgb = np.ascontiguousarray(apply_colormap(values, colormap, 0.0, 1.0)[..., :3])
        self.bar.setPixmap(rgb_pixmap(rgb))
        self.low.setText("0")
        self.high.setText(f"{vmax:.3g}")
        self.setToolTip(
            f"Colours of the map ({colormap}, shown at half opacity over the patch): "
            f"0 to {vmax:.3g} of the raw map, higher values in the top colour"
        )
        self.show()


class ResultView(QGroupBox):
    """One explanation: the patch, the CAM over it with its colour scale, scores,
    details, "Pin as layer".  :meth:`clear` empties all of it, title included."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        self.default_title = title
        self.patch = QLabel()
        self.overlay = QLabel()
        for label in (self.patch, self.overlay):
            label.setFixedSize(PREVIEW_PX // 2 + 10, PREVIEW_PX // 2 + 10)
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.scale = ColourScale(PREVIEW_PX // 2)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.pin_button = QPushButton(qta.icon("fa5s.thumbtack"), "Pin as layer")
        self.pin_button.setEnabled(False)
        images = QGridLayout()
        images.addWidget(self.patch, 0, 0)
        images.addWidget(self.overlay, 0, 1)
        images.addWidget(self.scale, 1, 1, Qt.AlignmentFlag.AlignHCenter)
        layout = QVBoxLayout(self)
        layout.addLayout(images)
        layout.addWidget(self.details)
        layout.addWidget(self.pin_button)
        self.clear()

    def clear(self, text: str = "") -> None:
        self.setTitle(self.default_title)
        self.patch.clear()
        self.overlay.clear()
        self.scale.hide()
        self.details.setText(text)
        self.pin_button.setEnabled(False)

    def show_result(
        self,
        patch_rgb: np.ndarray,
        overlay_rgb: np.ndarray,
        details: str,
        *,
        vmax: float | None = None,
        colormap: str = "jet",
    ) -> None:
        """The patch, the CAM over it and the details; ``vmax``: the top of the
        colours' range (raw map units), for the colour scale."""
        side = PREVIEW_PX // 2
        for label, rgb in ((self.patch, patch_rgb), (self.overlay, overlay_rgb)):
            label.setPixmap(
                rgb_pixmap(rgb).scaled(
                    side,
                    side,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            )
        self.details.setText(details)
        if vmax is not None:
            self.scale.show_scale(colormap, vmax)
        self.pin_button.setEnabled(True)


def colour_range_text(provenance: dict[str, Any]) -> str | None:
    """What the colours mean, in words: ``"colours span 0 to 0.022 of the raw map,
    shared across the region's 12 patches (its 99th percentile)"``."""
    norm = provenance.get("normalisation")
    if not isinstance(norm, dict) or norm.get("vmax") is None:
        return None
    vmax = float(norm["vmax"])
    geometry = provenance.get("geometry")
    patches = geometry.get("patches") if isinstance(geometry, dict) else None
    if provenance.get("kind") == "region":
        count = f"'s {patch_count(int(patches))}" if isinstance(patches, int) else ""
        what = f"of the raw map, shared across the region{count}"
    else:
        what = "of this patch's raw map"
    if norm.get("note") == "map is 0":
        return "the raw map is 0 everywhere: nothing to colour"
    if norm.get("kind") == "fixed":
        how = "a fixed top"
    elif norm.get("note"):
        how = f"its maximum, as its {norm.get('percentile', 99):g}th percentile is 0"
    else:
        how = f"its {norm.get('percentile', 99):g}th percentile"
    return f"colours span 0 to {vmax:.3g} {what} ({how})"


def describe_cam(provenance: dict[str, Any], scores: dict[str, float]) -> str:
    """HTML lines: class scores, then method, class, layer, the patches explained (the
    count ``slidelens explain`` reports), what the colours mean, and time."""
    e = html.escape
    score_text = ", ".join(f"{e(k)} <b>{v:.3f}</b>" for k, v in scores.items())
    lines = [
        f"Scores: {score_text}",
        f"Method: {e(str(provenance.get('method_label', provenance.get('method', '?'))))}",
        f"Class: {e(str(provenance.get('class_name', '?')))}",
        f"Layer: {e(str(provenance.get('layer') or 'none (hook-free)'))}",
    ]
    geometry = provenance.get("geometry")
    if isinstance(geometry, dict) and isinstance(geometry.get("patches"), int):
        lines.append(f"Explained: {patch_count(geometry['patches'])}")
    colours = colour_range_text(provenance)
    if colours is not None:
        lines.append(html.escape(colours[0].upper() + colours[1:], quote=False))
    if "time_s" in provenance:
        lines.append(f"Time: {float(provenance['time_s']):.2f} s")
    return "<br>".join(lines)


class ExplainPanel(QWidget):
    """Signals: ``tool_toggled(bool)`` (the Explain tool button), ``model_chosen(folder)``,
    ``cancel_requested()``, ``pin_requested(slot)`` with slot 0 (main) or 1 (beside)."""

    tool_toggled = Signal(bool)
    model_chosen = Signal(object)
    cancel_requested = Signal()
    pin_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_combo = QComboBox()
        self.model_combo.currentIndexChanged.connect(
            lambda _i: self.model_chosen.emit(self.model_combo.currentData())
        )
        self.method_combo = QComboBox()
        self.beside_combo = QComboBox()
        self.class_combo = QComboBox()
        self.layer_combo = QComboBox()
        self.set_methods(None)
        self.set_classes(())
        self.set_layers([], None)
        self.tool_button = QToolButton()
        self.tool_button.setText("Explain on the slide")
        self.tool_button.setIcon(qta.icon("fa5s.crosshairs"))
        self.tool_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.tool_button.setCheckable(True)
        self.tool_button.setToolTip("Click a spot (one patch) or drag a region (X)")
        self.tool_button.toggled.connect(self.tool_toggled)
        self.hint = QLabel("Click a spot or drag a region on the slide.")
        self.hint.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.hide()
        self.cancel_button = QToolButton()
        self.cancel_button.setIcon(qta.icon("fa5s.stop-circle", color="#c0392b"))
        self.cancel_button.setToolTip("Cancel the explanation")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.cancel_button.hide()
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)

        form = QFormLayout()
        form.addRow("Model", self.model_combo)
        form.addRow("Method", self.method_combo)
        form.addRow("Beside it", self.beside_combo)
        form.addRow("Class", self.class_combo)
        form.addRow("Layer", self.layer_combo)
        self.views = (ResultView("Explanation"), ResultView("Beside"))
        for slot, view in enumerate(self.views):
            view.pin_button.clicked.connect(lambda _=False, s=slot: self.pin_requested.emit(s))
        results = QGridLayout()
        results.addWidget(self.views[0], 0, 0)
        results.addWidget(self.views[1], 0, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.tool_button)
        layout.addWidget(self.hint)
        layout.addLayout(progress_row)
        layout.addLayout(results)
        layout.addStretch(1)

    # -- choices ----------------------------------------------------------------------
    def set_models(self, entries: Sequence[tuple[str, object]], selected: object | None) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        # folders are kept as text: Qt compares item data by value only for plain types
        for name, folder in entries:
            self.model_combo.addItem(name, str(folder))
        index = next((i for i, (_n, f) in enumerate(entries) if str(f) == str(selected)), 0)
        self.model_combo.setCurrentIndex(index if entries else -1)
        self.model_combo.blockSignals(False)

    def set_methods(self, infos: list[MethodInfo] | None) -> None:
        """List methods; unavailable ones are disabled with the reason as tooltip."""
        entries = (
            [(m.name, m.label, m.available, m.reason) for m in infos]
            if infos is not None
            else [(n, label, True, None) for n, label in DEFAULT_METHODS]
        )
        for combo, with_none in ((self.method_combo, False), (self.beside_combo, True)):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            if with_none:
                combo.addItem("(none)", None)
            for name, label, available, reason in entries:
                combo.addItem(label, name)
                model = combo.model()
                assert isinstance(model, QStandardItemModel)
                item = model.item(combo.count() - 1)
                item.setEnabled(available)
                if reason:
                    item.setToolTip(reason)
            index = combo.findData(current)
            if index < 0 or not _enabled(combo, index):
                index = next(
                    (i for i in range(combo.count()) if _enabled(combo, i) and combo.itemData(i)),
                    0,
                )
                if with_none:
                    index = 0
            combo.setCurrentIndex(index)
            combo.blockSignals(False)

    def set_classes(self, names: tuple[str, ...] | list[str]) -> None:
        current = self.class_combo.currentData()
        self.class_combo.clear()
        self.class_combo.addItem("Predicted class", None)
        for name in names:
            self.class_combo.addItem(name, name)
        self.class_combo.setCurrentIndex(max(0, self.class_combo.findData(current)))

    def set_layers(self, layers: list[str], default: str | None) -> None:
        self.layer_combo.clear()
        self.layer_combo.addItem(f"Card default ({default})" if default else "Card default", None)
        for name in layers:
            if name != default:
                self.layer_combo.addItem(name, name)
        self.layer_combo.setEnabled(bool(layers))

    @property
    def method(self) -> str:
        return str(self.method_combo.currentData() or "gradcam")

    @property
    def beside(self) -> str | None:
        value = self.beside_combo.currentData()
        return str(value) if value else None

    @property
    def target(self) -> str | None:
        value = self.class_combo.currentData()
        return str(value) if value else None

    @property
    def layer(self) -> str | None:
        value = self.layer_combo.currentData()
        return str(value) if value else None

    # -- progress ---------------------------------------------------------------------
    def show_progress(self, done: int, total: int, patches: int | None) -> None:
        """``Explaining 12 patches: 35 / 140 passes``: a pass is the model run once on
        one patch or on one masked copy of it (``slidelens explain`` counts the same)."""
        self.progress.show()
        self.cancel_button.show()
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        what = "Explaining" if patches is None else f"Explaining {patch_count(patches)}"
        self.progress.setFormat(f"{what}: %v / %m passes")
        self.progress.setToolTip(
            "A pass is the model run once on one patch, or on one masked copy of it "
            "(Score-CAM, occlusion and integrated gradients make many per patch)"
        )

    def hide_progress(self) -> None:
        self.progress.hide()
        self.cancel_button.hide()


def _enabled(combo: QComboBox, index: int) -> bool:
    model = combo.model()
    if not isinstance(model, QStandardItemModel):
        return True
    item = model.item(index)
    return item is not None and item.isEnabled()
