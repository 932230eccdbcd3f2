"""The layers panel: every layer with its visibility, and the selected layer's settings.

The list shows the top layer first (drawn last); a layer with a warning (a model not
for diagnosis, or run on a slide outside its domain) is marked and its warning shown
above its settings.  Settings write straight to the layer model; the panel follows the
model's events, so changes from elsewhere show here too.  The panel is laid out to
show the list and every setting in a dock about 400 px high (the right-hand dock
area's lower half at the default 1400 x 900 window).
"""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from viewer.layers.base import Layer, LayerStack
from viewer.layers.colormaps import CONTINUOUS
from viewer.layers.heatmap import ARGMAX, CONFIDENCE_MEASURES, HeatmapLayer
from viewer.layers.masks import MaskLayer

_ROLE_LAYER = Qt.ItemDataRole.UserRole + 1


def describe_provenance(layer: Layer) -> str:
    """A few lines on where a layer came from, for the panel and tooltips."""
    prov = getattr(layer, "provenance", None) or {}
    lines = []
    model = prov.get("model")
    sha = prov.get("model_sha256")
    if isinstance(model, dict):  # explanations keep the model's record
        sha = model.get("sha256", sha)
        model = model.get("name")
    if model:
        lines.append(f"Model: {model}")
    if "method" in prov:
        lines.append(f"Method: {prov.get('method_label', prov['method'])}")
    if "class_name" in prov and "method" in prov:
        lines.append(f"Class: {prov['class_name']} ({prov.get('class_from', 'chosen')})")
    if "layer" in prov and "method" in prov:
        lines.append(f"Layer: {prov['layer'] or 'none (hook-free method)'}")
    norm = prov.get("normalisation")
    if isinstance(norm, dict) and "vmax" in norm:
        lines.append(f"Normalisation: one range for the whole map, 0 to {norm['vmax']:.3g}")
    if "time_s" in prov:
        lines.append(f"Time: {float(prov['time_s']):.2f} s")
    if sha:
        lines.append(f"Model SHA-256: {str(sha)[:16]}…")
    if "scope" in prov:
        lines.append(f"Computed on: {prov['scope']}")
    if "created" in prov:
        lines.append(f"Created: {prov['created']}")
    if prov.get("from_cache"):
        lines.append("Restored from the result cache (not recomputed)")
    if prov.get("incomplete"):
        lines.append("Incomplete: the run was cancelled")
    if "source" in prov:
        lines.append(f"File: {prov['source']}")
    return "\n".join(lines)


def is_cached(layer: Layer) -> bool:
    """Whether the layer was restored from the result cache rather than computed now."""
    prov = getattr(layer, "provenance", None) or {}
    return bool(prov.get("from_cache"))


class LayersPanel(QWidget):
    """List + settings of a :class:`LayerStack`.  ``legend_toggled(bool)`` is emitted by
    the legend checkbox."""

    legend_toggled = Signal(bool)

    def __init__(self, layers: LayerStack, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layers = layers
        self._updating = False
        self.list = QListWidget()
        self.list.setObjectName("layer-list")
        self.list.itemChanged.connect(self._on_item_changed)
        self.list.currentItemChanged.connect(lambda *_: self._show_settings())

        self.up_button = self._tool_button("fa5s.arrow-up", "Move the layer up", self._move_up)
        self.down_button = self._tool_button(
            "fa5s.arrow-down", "Move the layer down", self._move_down
        )
        self.remove_button = self._tool_button(
            "fa5s.trash-alt", "Remove the layer (cached results stay cached)", self._remove
        )
        self.legend_check = QCheckBox("Legend on the slide")
        self.legend_check.setChecked(True)
        self.legend_check.toggled.connect(self.legend_toggled)
        buttons = QHBoxLayout()
        for button in (self.up_button, self.down_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.legend_check)

        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.valueChanged.connect(self._on_opacity)
        self.show_combo = QComboBox()
        self.show_combo.currentIndexChanged.connect(self._on_show)
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(CONTINUOUS)
        self.colormap_combo.currentTextChanged.connect(self._on_colormap)
        self.vmin = self._spin(self._on_range)
        self.vmax = self._spin(self._on_range)
        range_row = QHBoxLayout()
        range_row.addWidget(self.vmin)
        range_row.addWidget(QLabel("to"))
        range_row.addWidget(self.vmax)
        self.threshold_check = QCheckBox("Hide below")
        self.threshold_check.toggled.connect(self._on_threshold)
        self.threshold = self._spin(self._on_threshold)
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(self.threshold_check)
        threshold_row.addWidget(self.threshold)
        self.interpolation_combo = QComboBox()
        self.interpolation_combo.addItem("True patches (nearest)", "nearest")
        self.interpolation_combo.addItem("Smooth", "smooth")
        self.interpolation_combo.currentIndexChanged.connect(self._on_interpolation)
        self.outline_check = QCheckBox("Outline only")
        self.outline_check.toggled.connect(self._on_outline)
        self.clip_check = QCheckBox("Clip to tissue")
        self.clip_check.setToolTip(
            "Show a segmentation map only on tissue (it is always clipped to the slide); "
            "exported figures follow"
        )
        self.clip_check.toggled.connect(self._on_clip)
        checks_row = QHBoxLayout()
        checks_row.addWidget(self.clip_check)
        checks_row.addWidget(self.outline_check)
        checks_row.addStretch(1)
        self.warning_label = QLabel()
        self.warning_label.setObjectName("layer-warning")
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet(
            "QLabel { color: #a00000; background: #ffe2de; font-weight: bold; padding: 3px; }"
        )
        self.warning_label.hide()
        self.provenance = QLabel()
        self.provenance.setWordWrap(True)
        self.provenance.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.form = QFormLayout()
        self.form.setVerticalSpacing(4)
        self.form.addRow("Opacity", self.opacity)
        self.form.addRow("Show", self.show_combo)
        self.form.addRow("Colormap", self.colormap_combo)
        self.form.addRow("Range", range_row)
        self.form.addRow("Threshold", threshold_row)
        self.form.addRow("Pixels", self.interpolation_combo)
        self.form.addRow("", checks_row)
        self.settings_box = QWidget()
        settings_layout = QVBoxLayout(self.settings_box)
        settings_layout.setContentsMargins(0, 0, 0, 0)
        settings_layout.addWidget(self.warning_label)
        settings_layout.addLayout(self.form)
        settings_layout.addWidget(self.provenance)
        settings_layout.addStretch(1)

        # a few rows of list (it scrolls), then every setting, then the provenance: a
        # dock of about 400 px shows the list and all the controls
        self.list.setIconSize(QSize(16, 16))
        row_px = max(self.list.fontMetrics().height(), 16) + 6
        self.list.setMinimumHeight(3 * row_px + 6)
        self.list.setMaximumHeight(5 * row_px + 6)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(4)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.settings_box, 0)

        layers.inserted.connect(self._rebuild)
        layers.removed.connect(self._rebuild)
        layers.moved.connect(self._rebuild)
        layers.layer_changed.connect(self._on_layer_changed)
        self._rebuild()

    # -- construction helpers ---------------------------------------------------------
    def _tool_button(self, icon: str, tip: str, slot: object) -> QToolButton:
        button = QToolButton()
        button.setIcon(qta.icon(icon))
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    def _spin(self, slot: object) -> QDoubleSpinBox:
        spin = QDoubleSpinBox()
        spin.setDecimals(3)
        spin.setSingleStep(0.05)
        spin.setRange(-1e6, 1e6)
        spin.valueChanged.connect(slot)
        return spin

    # -- list -------------------------------------------------------------------------
    def selected_layer(self) -> Layer | None:
        item = self.list.currentItem()
        return item.data(_ROLE_LAYER) if item is not None else None

    def item_of(self, layer: Layer) -> QListWidgetItem | None:
        """The list item that shows ``layer``."""
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(_ROLE_LAYER) is layer:
                return item
        return None

    def select(self, layer: Layer) -> None:
        item = self.item_of(layer)
        if item is not None:
            self.list.setCurrentItem(item)

    def _item_text(self, layer: Layer) -> str:
        progress = getattr(layer, "progress", None)
        if progress is not None and progress[1] > 0:
            return f"{layer.name}  ({100 * progress[0] / progress[1]:.0f}%)"
        return layer.name

    def _rebuild(self, *_: object) -> None:
        selected = self.selected_layer()
        self._updating = True
        self.list.clear()
        for layer in reversed(list(self.layers)):
            item = QListWidgetItem(self._item_text(layer))
            item.setData(_ROLE_LAYER, layer)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
            self._mark(item, layer)
            self.list.addItem(item)
        self._updating = False
        if selected is not None and selected in self.layers:
            self.select(selected)
        elif self.list.count():
            self.list.setCurrentRow(0)
        self._show_settings()

    def _mark(self, item: QListWidgetItem, layer: Layer) -> None:
        """The item's icon and tooltip: a warning sign on a layer that carries a warning
        (the warning leads the tooltip), else a clock on one restored from the cache."""
        tip = describe_provenance(layer) or layer.name
        if layer.warning:
            item.setIcon(qta.icon("fa5s.exclamation-triangle", color="#b00000"))
            tip = layer.warning.replace("\n", " · ") + "\n\n" + tip
        elif is_cached(layer):
            item.setIcon(qta.icon("fa5s.history"))
        else:
            item.setIcon(QIcon())
        item.setToolTip(tip)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._updating:
            return
        layer: Layer = item.data(_ROLE_LAYER)
        layer.visible = item.checkState() == Qt.CheckState.Checked

    def _on_layer_changed(self, layer: Layer, what: str) -> None:
        if what in ("visible", "name", "data", "warning"):
            for row in range(self.list.count()):
                item = self.list.item(row)
                if item.data(_ROLE_LAYER) is layer:
                    self._updating = True
                    item.setText(self._item_text(layer))
                    item.setCheckState(
                        Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked
                    )
                    if what == "warning":
                        self._mark(item, layer)
                    self._updating = False
        if layer is self.selected_layer() and what not in ("data",):
            self._show_settings()

    def _move_up(self) -> None:
        layer = self.selected_layer()
        if layer is not None:
            self.layers.move(layer, self.layers.index(layer) + 1)

    def _move_down(self) -> None:
        layer = self.selected_layer()
        if layer is not None:
            self.layers.move(layer, self.layers.index(layer) - 1)

    def _remove(self) -> None:
        layer = self.selected_layer()
        if layer is not None:
            self.layers.remove(layer)

    # -- settings ---------------------------------------------------------------------
    def _show_settings(self) -> None:
        layer = self.selected_layer()
        self._updating = True
        try:
            self.settings_box.setEnabled(layer is not None)
            for button in (self.up_button, self.down_button, self.remove_button):
                button.setEnabled(layer is not None)
            self.warning_label.setVisible(layer is not None and bool(layer.warning))
            if layer is None:
                self.provenance.setText("")
                return
            self.warning_label.setText(layer.warning.replace("\n", " · "))
            self.opacity.setValue(round(layer.opacity * 100))
            heatmap = isinstance(layer, HeatmapLayer)
            for widget in (
                self.show_combo,
                self.colormap_combo,
                self.vmin,
                self.vmax,
                self.threshold_check,
                self.threshold,
                self.interpolation_combo,
            ):
                widget.setEnabled(heatmap)
            self.outline_check.setEnabled(isinstance(layer, MaskLayer))
            clips = isinstance(layer, HeatmapLayer) and layer.clips
            self.clip_check.setEnabled(clips)
            self.clip_check.setChecked(
                isinstance(layer, HeatmapLayer) and clips and layer.clip_to_tissue
            )
            if isinstance(layer, HeatmapLayer):
                self.show_combo.clear()
                for k, name in enumerate(layer.class_names):
                    self.show_combo.addItem(f"{name} {layer.value_label}", k)
                if len(layer.class_names) > 1:
                    self.show_combo.addItem("Most likely class (class map)", ARGMAX)
                    for index, measure in CONFIDENCE_MEASURES.items():
                        self.show_combo.addItem(f"Confidence ({measure})", index)
                self.show_combo.setCurrentIndex(self.show_combo.findData(layer.class_index))
                self.colormap_combo.setCurrentText(layer.colormap)
                self.colormap_combo.setEnabled(layer.class_index != ARGMAX)
                vmin, vmax = layer.value_range
                self.vmin.setValue(vmin)
                self.vmax.setValue(vmax)
                self.threshold_check.setChecked(layer.threshold is not None)
                self.threshold.setValue(layer.threshold if layer.threshold is not None else 0.5)
                self.threshold.setEnabled(layer.threshold is not None)
                self.interpolation_combo.setCurrentIndex(
                    self.interpolation_combo.findData(layer.interpolation)
                )
            if isinstance(layer, MaskLayer):
                self.outline_check.setChecked(layer.outline_only)
            self.provenance.setText(describe_provenance(layer))
        finally:
            self._updating = False

    def _on_opacity(self, value: int) -> None:
        layer = self.selected_layer()
        if layer is not None and not self._updating:
            layer.opacity = value / 100

    def _on_show(self, index: int) -> None:
        layer = self.selected_layer()
        if isinstance(layer, HeatmapLayer) and not self._updating and index >= 0:
            layer.class_index = int(self.show_combo.itemData(index))

    def _on_colormap(self, name: str) -> None:
        layer = self.selected_layer()
        if isinstance(layer, HeatmapLayer) and not self._updating and name:
            layer.colormap = name

    def _on_range(self, *_: object) -> None:
        layer = self.selected_layer()
        if isinstance(layer, HeatmapLayer) and not self._updating:
            vmin, vmax = self.vmin.value(), self.vmax.value()
            if vmin < vmax:
                layer.value_range = (vmin, vmax)

    def _on_threshold(self, *_: object) -> None:
        layer = self.selected_layer()
        if isinstance(layer, HeatmapLayer) and not self._updating:
            on = self.threshold_check.isChecked()
            self.threshold.setEnabled(on)
            layer.threshold = self.threshold.value() if on else None

    def _on_interpolation(self, index: int) -> None:
        layer = self.selected_layer()
        if isinstance(layer, HeatmapLayer) and not self._updating and index >= 0:
            layer.interpolation = self.interpolation_combo.itemData(index)

    def _on_clip(self, checked: bool) -> None:
        layer = self.selected_layer()
        if isinstance(layer, HeatmapLayer) and layer.clips and not self._updating:
            layer.clip_to_tissue = checked

    def _on_outline(self, checked: bool) -> None:
        layer = self.selected_layer()
        if isinstance(layer, MaskLayer) and not self._updating:
            layer.outline_only = checked
