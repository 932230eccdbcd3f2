"""One model's whole-slide report in the Slide report panel: the grade and the class areas.

:class:`GradeSection` shows one slide report, the dict of
:func:`~inference.results.slide_report.slide_report` (what ``slidelens infer`` writes
as ``<stem>.slide.json``), top to bottom:

* a caption: the model and "whole slide";
* for a report with a grade: the ISUP grade group, large and bold; the Gleason score
  ("Gleason 3+4 = 7"; "no tumour" for grade group 0); the tumour's share of the tissue;
* a table of the classes: a swatch in the class colour (the one palette,
  :func:`~inference.core.palette.result_class_colours`), the name, the area in mm² ("—"
  when the slide has no pixel size, with a hint saying so), the share of the tissue,
  and a "Go to" button that emits ``go_to(rect)``: a level-0 ``(x, y, w, h)`` as large as
  the bounding box of the class's largest region, centred on its most interior point (a
  bounding box's centre may lie outside a curved region; this point never does).  The
  button is disabled for a class without a region;
* how the grade was made (the model's declared rule), why there is none when the report
  has none (``problem``), and the model's warning (e.g. "NOT FOR DIAGNOSIS").

Widgets only: the controller (:mod:`viewer.qt.controllers.class_report`) makes the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from inference.core.palette import result_class_colours

#: Shown for an area that cannot be known (no pixel size).
NO_AREA = "—"
SWATCH_PX = 12
#: The table's column headings.
HEADINGS = ("", "Class", "Area (mm²)", "% of tissue", "Largest region")
_WARNING_STYLE = "color: #b35900;"


@dataclass(frozen=True)
class ClassRow:
    """The widgets of one class's row in the table."""

    swatch: QLabel
    name: QLabel
    area: QLabel
    share: QLabel
    go_button: QPushButton


def go_to_rect(region: Mapping[str, Any] | None) -> tuple[float, float, float, float] | None:
    """The rectangle a "Go to" button emits for a report's ``largest_region`` entry (see
    the module docstring); ``None`` for a class without a region."""
    if not isinstance(region, Mapping):
        return None
    rect, point = region.get("l0_rect"), region.get("l0_point")
    if not rect or len(rect) != 4:
        return None
    x, y, w, h = (float(v) for v in rect)
    cx, cy = (float(v) for v in point) if point and len(point) == 2 else (x + w / 2, y + h / 2)
    return (cx - w / 2, cy - h / 2, w, h)


def gleason_text(report: Mapping[str, Any]) -> str:
    """``"Gleason 3+4 = 7"``, or ``"no tumour"`` for a graded slide without tumour."""
    primary, secondary = report.get("gleason_primary"), report.get("gleason_secondary")
    if report.get("gleason_score") is None or primary is None or secondary is None:
        return "no tumour"
    return f"Gleason {report['gleason_score']} = {int(primary) + int(secondary)}"


def area_text(area_mm2: float | None) -> str:
    """An area in mm² for the table (:data:`NO_AREA` without one)."""
    if area_mm2 is None:
        return NO_AREA
    return f"{area_mm2:,.3f}" if area_mm2 < 100 else f"{area_mm2:,.1f}"


def _percent(fraction: float | None) -> str:
    return NO_AREA if fraction is None else f"{100 * float(fraction):.1f} %"


def _plain(text: str) -> QLabel:
    """A label that shows ``text`` as it is (a model's or class's name is not markup)."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def _swatch(rgb: tuple[int, int, int]) -> QLabel:
    pixmap = QPixmap(SWATCH_PX, SWATCH_PX)
    pixmap.fill(QColor(*rgb))
    label = QLabel()
    label.setPixmap(pixmap)
    return label


def _rule_text(grading: Mapping[str, Any]) -> str:
    if grading.get("biopsy", True):
        how = "the most extensive pattern, then the highest other one"
    else:
        share = 100 * float(grading.get("min_secondary_fraction", 0.05))
        how = f"the most extensive pattern, then the next one from {share:g} % of the tumour"
    return (
        f"Graded by the model's declared rule ({grading.get('rule', '?')}"
        f"{', biopsy' if grading.get('biopsy', True) else ''}: {how}), from the area of "
        "each class over the computed tissue; not a pathologist's grade."
    )


class GradeSection(QWidget):
    """See the module docstring.  ``report`` is a slide report, ``model`` the model's
    name; ``from_cache`` adds so to the caption; ``warning`` is the model's (its domain
    record's) and ``problem`` why the report has no grade although it might have one
    ("" when there is nothing to say)."""

    go_to = Signal(object)

    def __init__(
        self,
        report: Mapping[str, Any],
        *,
        model: str,
        from_cache: bool = False,
        warning: str = "",
        problem: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.report = report
        grading = report.get("grading")
        #: The report's grading rule (``None``: the report has no grade).
        self.grading: Mapping[str, Any] | None = grading if isinstance(grading, Mapping) else None
        caption = f"{model} · whole slide" + (" · from the result cache" if from_cache else "")
        self.caption_text = _plain(caption)
        self.caption_text.setWordWrap(True)
        self.grade_text = QLabel("")
        font = self.grade_text.font()
        font.setPointSizeF(font.pointSizeF() + 4)
        font.setBold(True)
        self.grade_text.setFont(font)
        self.gleason_text = QLabel("")
        self.tumour_text = QLabel("")
        if self.grading is not None:
            self.grade_text.setText(f"ISUP grade group {int(report.get('isup_grade') or 0)}")
            self.gleason_text.setText(gleason_text(report))
            self.tumour_text.setText(self._tumour_line(self.grading))
        for label in (self.grade_text, self.gleason_text, self.tumour_text):
            label.setVisible(self.graded)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.rows: dict[str, ClassRow] = {}
        table = QGridLayout()
        table.setHorizontalSpacing(8)
        for column, title in enumerate(HEADINGS):
            table.addWidget(QLabel(f"<b>{title}</b>"), 0, column)
        self._fill_table(table, self.grading)

        self.area_hint = QLabel("")
        self.area_hint.setWordWrap(True)
        if report.get("mpp") is None:
            self.area_hint.setText(
                "The slide states no pixel size, so areas in mm² are unknown: type one "
                "(File > Slide properties, Ctrl+I) to see them."
            )
        self.area_hint.setVisible(bool(self.area_hint.text()))

        self.note_text = _plain("")
        self.note_text.setWordWrap(True)
        if self.grading is not None:
            self.note_text.setText(_rule_text(self.grading))
        elif problem:
            self.note_text.setText(problem)
            self.note_text.setStyleSheet(_WARNING_STYLE)
        else:
            self.note_text.setText("This model declares no grading rule: class areas only.")
        self.warning_text = _plain(warning.replace("\n", " · "))
        self.warning_text.setWordWrap(True)
        self.warning_text.setStyleSheet(_WARNING_STYLE)
        self.warning_text.setVisible(bool(warning))

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.caption_text, self.grade_text, self.gleason_text, self.tumour_text):
            layout.addWidget(widget)
        layout.addLayout(table)
        for widget in (self.area_hint, self.note_text, self.warning_text):
            layout.addWidget(widget)

    @property
    def graded(self) -> bool:
        """Whether the report has a grade."""
        return self.grading is not None

    @property
    def go_buttons(self) -> dict[str, QPushButton]:
        """Each class's "Go to" button, by class name."""
        return {name: row.go_button for name, row in self.rows.items()}

    def _tumour_line(self, grading: Mapping[str, Any]) -> str:
        fraction = self.report.get("tumour_fraction")
        areas = self.report.get("class_area_mm2") or {}
        patterns = list((grading.get("patterns") or {}).keys())
        known = [float(a) for a in (areas.get(name) for name in patterns) if a is not None]
        area = f", {area_text(sum(known))} mm²" if known and len(known) == len(patterns) else ""
        return f"Tumour: {_percent(fraction)} of the tissue{area}"

    def _fill_table(self, table: QGridLayout, grading: Mapping[str, Any] | None) -> None:
        names = [str(n) for n in self.report.get("class_names") or ()]
        colours = result_class_colours(names)
        areas = self.report.get("class_area_mm2") or {}
        shares = self.report.get("class_fraction") or {}
        regions = self.report.get("largest_region") or {}
        patterns = dict(grading.get("patterns") or {}) if grading is not None else {}
        for row, (name, colour) in enumerate(zip(names, colours, strict=True), start=1):
            rect = go_to_rect(regions.get(name))
            button = QPushButton("Go to")
            button.setEnabled(rect is not None)
            if rect is not None:
                button.setToolTip(f"Centre the view on the largest {name} region")
                button.clicked.connect(lambda _checked=False, r=rect: self.go_to.emit(r))
            else:
                button.setToolTip(f"No cell of the slide is {name}")
            widgets = ClassRow(
                _swatch(colour),
                _plain(name),
                QLabel(area_text(areas.get(name))),
                QLabel(_percent(shares.get(name))),
                button,
            )
            if name in patterns:
                widgets.name.setToolTip(f"Gleason pattern {patterns[name]}")
            for column, widget in enumerate(
                (widgets.swatch, widgets.name, widgets.area, widgets.share, widgets.go_button)
            ):
                align = Qt.AlignmentFlag.AlignRight if column in (2, 3) else Qt.AlignmentFlag(0)
                table.addWidget(
                    widget, row, column, alignment=align | Qt.AlignmentFlag.AlignVCenter
                )
            self.rows[name] = widgets
