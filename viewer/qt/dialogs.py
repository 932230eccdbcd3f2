"""Slide properties and associated images (label, macro, thumbnail)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QInputDialog,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from inference.slides import SlideInfo


def summary_rows(info: SlideInfo) -> list[tuple[str, str]]:
    """The facts a pathologist checks first, in words."""
    l0_w, l0_h = info.dimensions
    rows = [
        ("File", str(info.path)),
        ("Format", info.vendor),
        ("Dimensions", f"{l0_w:,} x {l0_h:,} px"),
        (
            "Pixel size",
            f"{info.mpp:.4f} µm/px" if info.mpp else "unknown (measurements shown in px)",
        ),
        (
            "Objective",
            f"{info.objective_power:g}x" if info.objective_power else "unknown",
        ),
        ("Levels", str(info.level_count)),
    ]
    if info.mpp:
        rows.append(
            ("Physical size", f"{l0_w * info.mpp / 1000:.2f} x {l0_h * info.mpp / 1000:.2f} mm")
        )
    for level, ((w, h), ds) in enumerate(
        zip(info.level_dimensions, info.level_downsamples, strict=True)
    ):
        rows.append((f"Level {level}", f"{w:,} x {h:,} px (downsample {ds:.3g})"))
    rows.append(("Associated images", ", ".join(info.associated_images) or "none"))
    rows.append(("Content id", info.source_id))
    return rows


def _table(rows: list[tuple[str, str]]) -> QTableWidget:
    table = QTableWidget(len(rows), 2)
    table.setHorizontalHeaderLabels(["Property", "Value"])
    table.verticalHeader().hide()
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    for row, (key, value) in enumerate(rows):
        table.setItem(row, 0, QTableWidgetItem(key))
        table.setItem(row, 1, QTableWidgetItem(value.replace("\r", " ").replace("\n", " ")))
    return table


class SlidePropertiesDialog(QDialog):
    """A summary tab, every raw property, and one tab per associated image."""

    def __init__(
        self, info: SlideInfo, associated: dict[str, QImage], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Properties: {info.path.name}")
        self.resize(720, 560)
        tabs = QTabWidget()
        tabs.addTab(_table(summary_rows(info)), "Summary")
        tabs.addTab(_table(sorted(info.properties.items())), "All properties")
        for name, image in associated.items():
            label = QLabel()
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            pixmap = QPixmap.fromImage(image)
            if pixmap.width() > 660 or pixmap.height() > 440:
                pixmap = pixmap.scaled(
                    660,
                    440,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.SmoothTransformation,
                )
            label.setPixmap(pixmap)
            tabs.addTab(label, name.capitalize())
        self.tabs = tabs
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(buttons)


#: Micrometres per pixel chosen for slides that state none, by source id, this session.
_chosen_mpp: dict[str, float] = {}


def ask_slide_mpp(parent: QWidget, info: SlideInfo) -> float | None:
    """The pixel size to assume for a slide that states none: asked once per slide and
    session (``None`` when the user cancels)."""
    if info.source_id in _chosen_mpp:
        return _chosen_mpp[info.source_id]
    value, ok = QInputDialog.getDouble(
        parent,
        "Pixel size needed",
        f"{info.path.name} does not state its pixel size, so the model's patch size "
        "on the slide is unknown.\nMicrometres per pixel of this scan "
        "(0.25 for 40x, 0.5 for 20x):",
        0.5,
        0.01,
        100.0,
        4,
    )
    if not ok:
        return None
    _chosen_mpp[info.source_id] = value
    return value
