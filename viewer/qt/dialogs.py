"""Slide properties and associated images (label, macro, thumbnail); the pixel size a
slide that states none is given (asked once per slide, changeable in the properties)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from inference.models.domain import DomainCheck
from inference.slides import SlideInfo
from viewer.pixel_size import MAX_TYPED_MPP, MIN_TYPED_MPP, SlidePixelSize

#: The pixel size offered when the user is first asked (20x).
DEFAULT_TYPED_MPP = 0.5


def summary_rows(info: SlideInfo, typed_mpp: float | None = None) -> list[tuple[str, str]]:
    """The facts a pathologist checks first, in words.  ``typed_mpp``: the pixel size the
    user gave a slide that states none."""
    l0_w, l0_h = info.dimensions
    mpp = info.mpp or typed_mpp
    if info.mpp:
        pixel_size = f"{info.mpp:.4f} µm/px"
    elif typed_mpp:
        pixel_size = f"{typed_mpp:.4f} µm/px (typed; the slide states none)"
    else:
        pixel_size = "unknown (measurements shown in px)"
    rows = [
        ("File", str(info.path)),
        ("Format", info.vendor),
        ("Dimensions", f"{l0_w:,} x {l0_h:,} px"),
        ("Pixel size", pixel_size),
        (
            "Objective",
            f"{info.objective_power:g}x" if info.objective_power else "unknown",
        ),
        ("Levels", str(info.level_count)),
    ]
    if mpp:
        rows.append(("Physical size", f"{l0_w * mpp / 1000:.2f} x {l0_h * mpp / 1000:.2f} mm"))
    for level, ((w, h), ds) in enumerate(
        zip(info.level_dimensions, info.level_downsamples, strict=True)
    ):
        rows.append((f"Level {level}", f"{w:,} x {h:,} px (downsample {ds:.3g})"))
    rows.append(("Associated images", ", ".join(info.associated_images) or "none"))
    rows.append(("Content id", info.source_id))
    return rows


def _table(rows: list[tuple[str, str]], table: QTableWidget | None = None) -> QTableWidget:
    """A read-only two-column table of ``rows`` (refilled when ``table`` is given)."""
    if table is None:
        table = QTableWidget(0, 2)
        table.setHorizontalHeaderLabels(["Property", "Value"])
        table.verticalHeader().hide()
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
    table.setRowCount(len(rows))
    for row, (key, value) in enumerate(rows):
        table.setItem(row, 0, QTableWidgetItem(key))
        table.setItem(row, 1, QTableWidgetItem(value.replace("\r", " ").replace("\n", " ")))
    return table


class SlidePropertiesDialog(QDialog):
    """A summary tab, every raw property, and one tab per associated image.

    For a slide that states no pixel size, and given the open slide's ``pixel_size``,
    a row below sets the size measurements, the scale bar, models and explanations use
    (**Use**), or forgets it (**Forget**); it is remembered for the slide.
    """

    def __init__(
        self,
        info: SlideInfo,
        associated: dict[str, QImage],
        parent: QWidget | None = None,
        pixel_size: SlidePixelSize | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Properties: {info.path.name}")
        self.resize(720, 560)
        self.info = info
        self.pixel_size = pixel_size
        tabs = QTabWidget()
        self.summary = _table(summary_rows(info, self._typed()))
        tabs.addTab(self.summary, "Summary")
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
        self.mpp_spin = QDoubleSpinBox()
        self.mpp_use = QPushButton("Use")
        self.mpp_forget = QPushButton("Forget")
        self.mpp_message = QLabel()
        if pixel_size is not None and not info.mpp:
            layout.addLayout(self._pixel_size_row())
            layout.addWidget(self.mpp_message)
        layout.addWidget(buttons)

    def _typed(self) -> float | None:
        ps = self.pixel_size
        return ps.typed if ps is not None and ps.info is self.info else None

    def _pixel_size_row(self) -> QHBoxLayout:
        self.mpp_spin.setDecimals(4)
        self.mpp_spin.setRange(MIN_TYPED_MPP, MAX_TYPED_MPP)
        self.mpp_spin.setSingleStep(0.05)
        self.mpp_spin.setSuffix(" µm/px")
        self.mpp_spin.setValue(self._typed() or DEFAULT_TYPED_MPP)
        self.mpp_use.setToolTip("Measure, scale and run models with this pixel size")
        self.mpp_forget.setToolTip("Forget the typed pixel size (measurements in px again)")
        self.mpp_use.clicked.connect(lambda: self.set_typed_mpp(self.mpp_spin.value()))
        self.mpp_forget.clicked.connect(lambda: self.set_typed_mpp(None))
        self.mpp_forget.setEnabled(self._typed() is not None)
        row = QHBoxLayout()
        row.addWidget(QLabel("Pixel size (the slide states none):"))
        row.addWidget(self.mpp_spin, 1)
        row.addWidget(self.mpp_use)
        row.addWidget(self.mpp_forget)
        return row

    def set_typed_mpp(self, mpp: float | None) -> None:
        """Give the slide this pixel size (``None``: forget it), as **Use** and **Forget**
        do; the summary follows."""
        ps = self.pixel_size
        if ps is None or ps.info is not self.info:
            self.mpp_message.setText("This slide is no longer open.")
            return
        try:
            ps.set_typed(mpp)
        except ValueError as exc:
            self.mpp_message.setText(str(exc))
            return
        self.mpp_message.setText(ps.store.problem or "")
        self.mpp_forget.setEnabled(self._typed() is not None)
        _table(summary_rows(self.info, self._typed()), self.summary)


def ask_slide_mpp(parent: QWidget, info: SlideInfo) -> float | None:
    """Ask the user the pixel size of a slide that states none (``None``: cancelled).
    Only :func:`require_slide_mpp` calls it: it asks once per slide and remembers."""
    value, ok = QInputDialog.getDouble(
        parent,
        "Pixel size needed",
        f"{info.path.name} does not state its pixel size, so the model's patch size "
        "on the slide is unknown.\nMicrometres per pixel of this scan "
        "(0.25 for 40x, 0.5 for 20x; remembered for this slide, changeable in "
        "File > Slide properties):",
        DEFAULT_TYPED_MPP,
        MIN_TYPED_MPP,
        MAX_TYPED_MPP,
        4,
    )
    return value if ok else None


def require_slide_mpp(parent: QWidget, pixel_size: SlidePixelSize) -> float | None:
    """The open slide's effective pixel size, asking the user (:func:`ask_slide_mpp`)
    only when the slide states none and none was typed for it before.  ``None``: no
    slide, or the user cancelled."""
    return pixel_size.require(lambda info: ask_slide_mpp(parent, info))


def confirm_outside_domain(parent: QWidget, check: DomainCheck, slide_name: str) -> bool:
    """Ask before a model runs on a slide outside its domain, or runs when it is not
    for diagnosis and its card cannot tell (see ``DomainCheck.asks``): ``True`` to run
    anyway.  The caller remembers a yes per slide and model for the session."""
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        "Model outside its domain" if check.outside_domain else "Model not for diagnosis",
        f"{slide_name}: {check.question}",
        parent=parent,
    )
    run = box.addButton("Run anyway", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.exec()
    return box.clickedButton() is run
