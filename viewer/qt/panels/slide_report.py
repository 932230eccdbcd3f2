"""The Slide report panel: a whole slide's answer and where it came from.

Top to bottom: sections other reports fill (:meth:`SlideReportPanel.add_section`, e.g.
a whole-slide run's grade and class areas, first because they answer what the slide
shows; a keyed section is replaced by the next one under its key); the slide-level
model to run and its button (with progress); the answer (the slide label with its
probability, every class's probability, and the aggregation that made it); how the
attention layer scales its values (raw, or rank percentile); a gallery of the
top-ranked patches (most attended, or highest scoring), each a click away; "Find
regions like this one" (a canvas tool) with the ten most similar places, each a click
away.  Signals:
``run_requested()``, ``scaling_changed(str)`` (``raw`` or ``percentile``), ``go_to(object)``
(a level-0 ``(x, y, w, h)``) and ``similar_toggled(bool)``.  Widgets only: the
controllers fill it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListView,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

#: The scalings the attention layer offers, with their labels.
SCALING_CHOICES: tuple[tuple[str, str], ...] = (
    ("percentile", "Rank percentile"),
    ("raw", "Raw values"),
)
GALLERY_ICON_PX = 88
_ROLE_RECT = Qt.ItemDataRole.UserRole


def _pixmap(rgb: np.ndarray) -> QPixmap:
    h, w = rgb.shape[:2]
    data = np.ascontiguousarray(rgb)
    return QPixmap.fromImage(QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())


class SlideReportPanel(QWidget):
    """See the module docstring."""

    run_requested = Signal()
    scaling_changed = Signal(str)
    go_to = Signal(object)
    similar_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_combo = QComboBox()
        self.model_combo.setToolTip(
            "A slide-level head (e.g. ABMIL over a patch model's embeddings) or a patch "
            "model whose card declares how its outputs make a slide label"
        )
        self.run_button = QPushButton("Run on the whole slide")
        self.run_button.clicked.connect(self.run_requested)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.hint = QLabel("")
        self.hint.setWordWrap(True)

        self.label_text = QLabel("No slide-level answer yet.")
        font = self.label_text.font()
        font.setPointSizeF(font.pointSizeF() + 3)
        font.setBold(True)
        self.label_text.setFont(font)
        self.label_text.setWordWrap(True)
        self.probabilities_text = QLabel("")
        self.probabilities_text.setWordWrap(True)
        self.aggregation_text = QLabel("")
        self.aggregation_text.setWordWrap(True)
        self.aggregation_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.warning_text = QLabel("")
        self.warning_text.setWordWrap(True)
        self.warning_text.setStyleSheet("color: #b35900;")

        self.scaling_combo = QComboBox()
        for key, label in SCALING_CHOICES:
            self.scaling_combo.addItem(label, key)
        self.scaling_combo.setToolTip(
            "Attention sums to one over the slide: raw values are tiny and one strong "
            "region makes the rest look cold.  Rank percentiles show the ordering everywhere."
        )
        self.scaling_combo.currentIndexChanged.connect(
            lambda _i: self.scaling_changed.emit(self.scaling)
        )

        self.gallery = QListWidget()
        self.gallery.setViewMode(QListView.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(GALLERY_ICON_PX, GALLERY_ICON_PX))
        self.gallery.setResizeMode(QListView.ResizeMode.Adjust)
        self.gallery.setMovement(QListView.Movement.Static)
        self.gallery.setMinimumHeight(2 * GALLERY_ICON_PX + 40)
        self.gallery.itemClicked.connect(self._item_clicked)

        self.similar_button = QToolButton()
        self.similar_button.setText("Find regions like this one")
        self.similar_button.setCheckable(True)
        self.similar_button.setEnabled(False)
        self.similar_button.setToolTip(
            "Click a patch on the slide: every patch's cosine similarity to it becomes a "
            "layer, and the ten most similar places are listed here (needs embeddings: run "
            "a slide-level model first)"
        )
        self.similar_button.toggled.connect(self.similar_toggled)
        self.similar_list = QListWidget()
        self.similar_list.setMinimumHeight(120)
        self.similar_list.itemClicked.connect(self._item_clicked)

        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button)
        run_row.addStretch(1)
        form = QFormLayout()
        form.addRow("Slide-level model", self.model_combo)
        form.addRow("Attention shown as", self.scaling_combo)

        answer = QGroupBox("Answer")
        answer_layout = QVBoxLayout(answer)
        for widget in (
            self.label_text,
            self.probabilities_text,
            self.aggregation_text,
            self.warning_text,
        ):
            answer_layout.addWidget(widget)
        gallery_box = QGroupBox("Top patches (click to go there)")
        QVBoxLayout(gallery_box).addWidget(self.gallery)
        similar_box = QGroupBox("Regions like this one")
        similar_layout = QVBoxLayout(similar_box)
        similar_layout.addWidget(self.similar_button)
        similar_layout.addWidget(self.similar_list)

        self.sections = QVBoxLayout()
        self._keyed: dict[str, QGroupBox] = {}
        layout = QVBoxLayout(self)
        layout.addLayout(self.sections)
        layout.addLayout(form)
        layout.addLayout(run_row)
        layout.addWidget(self.progress)
        layout.addWidget(self.hint)
        layout.addWidget(answer)
        layout.addWidget(gallery_box)
        layout.addWidget(similar_box)
        layout.addStretch(1)

    # -- filling --------------------------------------------------------------------------
    @property
    def scaling(self) -> str:
        return str(self.scaling_combo.currentData())

    def set_models(self, entries: Sequence[tuple[str, Path]], current: Path | None = None) -> None:
        """The slide-level models offered: ``(label, folder)``, ``current`` chosen."""
        chosen = str(current) if current is not None else self.model_combo.currentData()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for label, folder in entries:
            self.model_combo.addItem(label, str(folder))
        index = self.model_combo.findData(chosen)
        self.model_combo.setCurrentIndex(max(0, index))
        self.model_combo.blockSignals(False)
        self.run_button.setEnabled(self.model_combo.count() > 0)

    @property
    def model_folder(self) -> Path | None:
        data = self.model_combo.currentData()
        return Path(data) if data else None

    def show_progress(self, done: int, total: int) -> None:
        self.progress.setVisible(True)
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done:,} of {total:,} patches")

    def hide_progress(self) -> None:
        self.progress.setVisible(False)

    def clear(self, message: str = "No slide-level answer yet.") -> None:
        self.label_text.setText(message)
        self.probabilities_text.setText("")
        self.aggregation_text.setText("")
        self.warning_text.setText("")
        self.gallery.clear()
        self.similar_list.clear()
        self.hide_progress()

    def show_answer(
        self,
        label: str,
        probability: float,
        probabilities: Mapping[str, float],
        aggregation: Mapping[str, Any],
        warning: str = "",
    ) -> None:
        """The slide label, its probability and how it was made."""
        self.label_text.setText(f"{html.escape(label)}  ({100 * probability:.1f} %)")
        self.probabilities_text.setText(
            " · ".join(f"{html.escape(k)} {100 * v:.1f} %" for k, v in probabilities.items())
        )
        kind = str(aggregation.get("type", ""))
        details = [f"aggregation: {kind}"]
        for key in ("k", "q", "patch_threshold", "decision_threshold", "input", "patches"):
            if aggregation.get(key) is not None:
                details.append(f"{key.replace('_', ' ')} {aggregation[key]}")
        if aggregation.get("name") and aggregation.get("name") != kind:
            details.insert(0, f"model: {aggregation['name']}")
        self.aggregation_text.setText(", ".join(details))
        self.warning_text.setText(html.escape(warning))

    def show_gallery(self, items: Sequence[tuple[np.ndarray, tuple[float, ...], str]]) -> None:
        """Thumbnails ``(rgb, level-0 rect, caption)``, best first."""
        self.gallery.clear()
        for rgb, rect, caption in items:
            item = QListWidgetItem(QIcon(_pixmap(rgb)), caption)
            item.setData(_ROLE_RECT, tuple(float(v) for v in rect))
            item.setToolTip(f"{caption} at ({rect[0]:,.0f}, {rect[1]:,.0f}): click to go there")
            self.gallery.addItem(item)

    def show_similar(self, places: Sequence[tuple[tuple[float, ...], str]]) -> None:
        """The similar places ``(level-0 rect, text)``, best first."""
        self.similar_list.clear()
        for rect, text in places:
            item = QListWidgetItem(text)
            item.setData(_ROLE_RECT, tuple(float(v) for v in rect))
            self.similar_list.addItem(item)

    def add_section(self, title: str, widget: QWidget, key: str | None = None) -> QGroupBox:
        """A section above the report's own (another report's: a grade, a score).  With a
        ``key``, it replaces the section added before under that key, in its place."""
        box = QGroupBox(title)
        QVBoxLayout(box).addWidget(widget)
        old = self._keyed.pop(key, None) if key is not None else None
        if old is not None:
            self.sections.insertWidget(self.sections.indexOf(old), box)
            _discard(self.sections, old)
        else:
            self.sections.addWidget(box)
        if key is not None:
            self._keyed[key] = box
        return box

    def section(self, key: str) -> QGroupBox | None:
        """The section added under ``key`` (``None`` when there is none)."""
        return self._keyed.get(key)

    def remove_section(self, key: str) -> bool:
        """Remove the section added under ``key``; ``False`` when there was none."""
        box = self._keyed.pop(key, None)
        if box is not None:
            _discard(self.sections, box)
        return box is not None

    def _item_clicked(self, item: QListWidgetItem) -> None:
        rect = item.data(_ROLE_RECT)
        if rect:
            self.go_to.emit(tuple(rect))


def _discard(layout: QVBoxLayout, box: QWidget) -> None:
    layout.removeWidget(box)
    box.setParent(None)
    box.deleteLater()
