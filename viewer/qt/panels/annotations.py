"""The annotations panel: drawing tools, classes, the list with measurements, notes."""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QColorDialog,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from viewer.annotations import Annotation, AnnotationClass, AnnotationKind, AnnotationSet

#: Tool buttons: (tool id, icon, label, shortcut hint).
TOOLS: tuple[tuple[str, str, str, str], ...] = (
    ("pan", "fa5s.hand-paper", "Pan (no tool)", "Esc"),
    ("select", "fa5s.mouse-pointer", "Select, move and reshape", "S"),
    ("rectangle", "fa5s.square", "Rectangle", "R"),
    ("ellipse", "fa5s.circle", "Ellipse", "E"),
    ("polygon", "fa5s.draw-polygon", "Polygon", "P"),
    ("freehand", "fa5s.pen-fancy", "Freehand", "F"),
    ("points", "fa5s.dot-circle", "Points", "."),
    ("ruler", "fa5s.ruler", "Ruler", "L"),
)
KIND_LABELS = {
    AnnotationKind.RECTANGLE: "Rectangle",
    AnnotationKind.ELLIPSE: "Ellipse",
    AnnotationKind.POLYGON: "Polygon",
    AnnotationKind.FREEHAND: "Freehand",
    AnnotationKind.POINT: "Points",
    AnnotationKind.RULER: "Ruler",
}
_ROLE_ID = Qt.ItemDataRole.UserRole + 1
_UNCLASSIFIED = "(unclassified)"


def swatch(colour: tuple[int, int, int]) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(*colour))
    return QIcon(pixmap)


def _class_tooltip(name: str, aliases: tuple[str, ...]) -> str:
    """Says which other spellings (from imported files) were read as class ``name``."""
    if not aliases:
        return ""
    spelt = ", ".join(f"'{a}'" for a in aliases)
    return f"{name}; imported files also name it {spelt} (read as {name})"


class AnnotationsPanel(QWidget):
    """Signals: ``tool_chosen(tool_id)``, ``focus_requested(annotation_id)`` (double-click
    in the list centres the view on it)."""

    tool_chosen = Signal(str)
    focus_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.annotations: AnnotationSet | None = None
        self._updating = False
        self.tool_buttons: dict[str, QToolButton] = {}
        self.tool_group = QButtonGroup(self)
        self.tool_group.setExclusive(True)
        tools_row = QHBoxLayout()
        for tool_id, icon, label, key in TOOLS:
            button = QToolButton()
            button.setIcon(qta.icon(icon))
            button.setToolTip(f"{label} ({key})")
            button.setCheckable(True)
            button.clicked.connect(lambda _=False, t=tool_id: self.tool_chosen.emit(t))
            self.tool_group.addButton(button)
            self.tool_buttons[tool_id] = button
            tools_row.addWidget(button)
        tools_row.addStretch(1)
        self.tool_buttons["pan"].setChecked(True)

        self.class_combo = QComboBox()
        self.class_combo.setToolTip(
            "Class of new annotations; with annotations selected, sets their class"
        )
        self.class_combo.activated.connect(self._on_class_chosen)
        self.add_class_button = QToolButton()
        self.add_class_button.setIcon(qta.icon("fa5s.plus"))
        self.add_class_button.setToolTip("Add a class…")
        self.add_class_button.clicked.connect(self.add_class)
        class_row = QHBoxLayout()
        class_row.addWidget(QLabel("Class"))
        class_row.addWidget(self.class_combo, 1)
        class_row.addWidget(self.add_class_button)

        self.table = QTableWidget(0, 5)
        self.table.setObjectName("annotation-table")
        self.table.setHorizontalHeaderLabels(["Kind", "Class", "Name", "Area", "Length"])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._on_table_selection)
        self.table.cellDoubleClicked.connect(self._on_double_click)

        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("Name")
        self.name_edit.editingFinished.connect(self._commit_name)
        self.note_edit = QPlainTextEdit()
        self.note_edit.setPlaceholderText("Note (saved with the annotation)")
        self.note_edit.setMaximumHeight(70)
        self._note_timer = QTimer(self)
        self._note_timer.setSingleShot(True)
        self._note_timer.setInterval(600)
        self._note_timer.timeout.connect(self._commit_note)
        self.note_edit.textChanged.connect(
            lambda: None if self._updating else self._note_timer.start()
        )

        self.delete_button = self._button("fa5s.trash-alt", "Delete the selected annotations")
        self.undo_button = self._button("fa5s.undo", "Undo (Ctrl+Z)")
        self.redo_button = self._button("fa5s.redo", "Redo (Ctrl+Shift+Z)")
        self.delete_button.clicked.connect(self._delete)
        self.undo_button.clicked.connect(lambda: self.annotations and self.annotations.undo())
        self.redo_button.clicked.connect(lambda: self.annotations and self.annotations.redo())
        edit_row = QHBoxLayout()
        for button in (self.delete_button, self.undo_button, self.redo_button):
            edit_row.addWidget(button)
        edit_row.addStretch(1)
        self.units_label = QLabel()
        self.units_label.setWordWrap(True)
        self.count_label = QLabel()
        edit_row.addWidget(self.count_label)

        layout = QVBoxLayout(self)
        layout.addLayout(tools_row)
        layout.addLayout(class_row)
        layout.addWidget(self.table, 1)
        layout.addLayout(edit_row)
        layout.addWidget(self.name_edit)
        layout.addWidget(self.note_edit)
        layout.addWidget(self.units_label)
        self.set_annotations(None)

    def _button(self, icon: str, tip: str) -> QToolButton:
        button = QToolButton()
        button.setIcon(qta.icon(icon))
        button.setToolTip(tip)
        return button

    # -- model ------------------------------------------------------------------------
    def set_annotations(self, annotations: AnnotationSet | None) -> None:
        """Show another slide's annotations (``None``: no slide)."""
        if self.annotations is not None:
            for signal in (self.annotations.added, self.annotations.removed):
                signal.disconnect(self._on_set_changed)
            self.annotations.changed.disconnect(self._on_set_changed)
            self.annotations.selection_changed.disconnect(self._on_selection_changed)
            self.annotations.history_changed.disconnect(self._update_buttons)
            self.annotations.palette.changed.disconnect(self._fill_classes)
            self.annotations.mpp_changed.disconnect(self._on_mpp_changed)
        self.annotations = annotations
        if annotations is not None:
            for signal in (annotations.added, annotations.removed):
                signal.connect(self._on_set_changed)
            annotations.changed.connect(self._on_set_changed)
            annotations.selection_changed.connect(self._on_selection_changed)
            annotations.history_changed.connect(self._update_buttons)
            annotations.palette.changed.connect(self._fill_classes)
            annotations.mpp_changed.connect(self._on_mpp_changed)
        self._show_units()
        self.setEnabled(annotations is not None)
        self._fill_classes()
        self._rebuild()

    def _show_units(self) -> None:
        annotations = self.annotations
        self.units_label.setText(
            ""
            if annotations is None or annotations.mpp
            else "This slide states no pixel size: areas and lengths are in pixels "
            "(File > Slide properties sets one)."
        )

    def _on_mpp_changed(self, *_: object) -> None:
        """Measurements in another unit (a pixel size was typed or changed)."""
        self._show_units()
        self._rebuild()

    def choose_class(self, name: str | None) -> None:
        """Make ``name`` the class of new annotations (``None``: unclassified)."""
        self.class_combo.setCurrentIndex(max(0, self.class_combo.findData(name or "")))

    @property
    def current_class(self) -> AnnotationClass | None:
        if self.annotations is None:
            return None
        name = self.class_combo.currentData()
        return self.annotations.palette.get(name) if name else None

    def _fill_classes(self, *_: object) -> None:
        current = self.class_combo.currentData()
        self.class_combo.clear()
        self.class_combo.addItem(_UNCLASSIFIED, "")
        if self.annotations is not None:
            palette = self.annotations.palette
            for cls in palette:
                self.class_combo.addItem(swatch(cls.colour), cls.name, cls.name)
                tip = _class_tooltip(cls.name, palette.aliases(cls.name))
                if tip:
                    index = self.class_combo.count() - 1
                    self.class_combo.setItemData(index, tip, Qt.ItemDataRole.ToolTipRole)
        # new annotations start unclassified, as in QuPath, until a class is chosen
        self.class_combo.setCurrentIndex(max(0, self.class_combo.findData(current or "")))

    def add_class(self) -> None:
        if self.annotations is None:
            return
        name, ok = QInputDialog.getText(self, "New class", "Class name:")
        name = name.strip()
        if not ok or not name:
            return
        colour = QColorDialog.getColor(QColor(0, 160, 200), self, f"Colour of {name}")
        if not colour.isValid():
            return
        try:
            kept = self.annotations.palette.ensure(
                AnnotationClass(name, (colour.red(), colour.green(), colour.blue()))
            )
        except ValueError as exc:
            self.units_label.setText(str(exc))
            return
        # another spelling of a class the palette has ("tumor") is that class
        self.class_combo.setCurrentIndex(self.class_combo.findData(kept.name))

    def _on_class_chosen(self, _index: int) -> None:
        if self.annotations is not None and self.annotations.selection:
            self.annotations.set_class(self.annotations.selection, self.current_class)

    # -- list -------------------------------------------------------------------------
    def _row_values(self, annotation: Annotation) -> list[str]:
        assert self.annotations is not None
        m = self.annotations.measure(annotation)
        area = f"{m.area:,.0f} {m.area_unit}" if annotation.kind.is_area else ""
        if annotation.kind is AnnotationKind.POINT:
            length = f"{len(annotation.l0_points)} points"
        else:
            length = f"{m.length:,.1f} {m.length_unit}"
        return [
            KIND_LABELS.get(annotation.kind, str(annotation.kind)),
            annotation.class_name or "",
            annotation.name,
            area,
            length,
        ]

    def _rebuild(self, *_: object) -> None:
        self._updating = True
        self.table.setRowCount(0)
        if self.annotations is not None:
            items = self.annotations.annotations()
            self.table.setRowCount(len(items))
            for row, annotation in enumerate(items):
                for col, text in enumerate(self._row_values(annotation)):
                    item = QTableWidgetItem(text)
                    item.setData(_ROLE_ID, annotation.id)
                    if col == 1:
                        item.setIcon(swatch(annotation.colour))
                        name = annotation.class_name
                        aliases = self.annotations.palette.aliases(name) if name else ()
                        item.setToolTip(_class_tooltip(name or "", aliases))
                    self.table.setItem(row, col, item)
        self._updating = False
        self._on_selection_changed()
        self._update_buttons()

    def _on_set_changed(self, *_: object) -> None:
        self._rebuild()

    def _row_ids(self) -> list[str]:
        ids = []
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            ids.append(str(item.data(_ROLE_ID)) if item is not None else "")
        return ids

    def _on_selection_changed(self, *_: object) -> None:
        if self.annotations is None:
            self.count_label.setText("")
            return
        selected = self.annotations.selection
        self._updating = True
        self.table.clearSelection()
        for row, annotation_id in enumerate(self._row_ids()):
            if annotation_id in selected:
                self.table.selectRow(row)
        single = self.annotations.selected() if len(selected) == 1 else []
        self.name_edit.setEnabled(bool(single))
        self.note_edit.setEnabled(bool(single))
        self.name_edit.setText(single[0].name if single else "")
        self.note_edit.setPlainText(single[0].note if single else "")
        if single and single[0].class_name:
            self.class_combo.setCurrentIndex(self.class_combo.findData(single[0].class_name))
        self._updating = False
        count = len(self.annotations)
        self.count_label.setText(
            f"{count} annotation{'s' if count != 1 else ''}"
            + (f", {len(selected)} selected" if selected else "")
        )
        self._update_buttons()

    def _on_table_selection(self) -> None:
        if self._updating or self.annotations is None:
            return
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        ids = self._row_ids()
        self.annotations.select([ids[r] for r in sorted(rows)])

    def _on_double_click(self, row: int, _col: int) -> None:
        self.focus_requested.emit(self._row_ids()[row])

    def _update_buttons(self) -> None:
        annotations = self.annotations
        self.delete_button.setEnabled(bool(annotations and annotations.selection))
        self.undo_button.setEnabled(bool(annotations and annotations.can_undo))
        self.redo_button.setEnabled(bool(annotations and annotations.can_redo))
        if annotations is not None:
            self.undo_button.setToolTip(f"Undo {annotations.undo_text} (Ctrl+Z)".strip())
            self.redo_button.setToolTip(f"Redo {annotations.redo_text} (Ctrl+Shift+Z)".strip())

    def _delete(self) -> None:
        if self.annotations is not None and self.annotations.selection:
            self.annotations.delete(self.annotations.selection)

    def _commit_name(self) -> None:
        if self._updating or self.annotations is None:
            return
        selected = self.annotations.selected()
        if len(selected) == 1 and selected[0].name != self.name_edit.text():
            self.annotations.set_name(selected[0].id, self.name_edit.text())

    def _commit_note(self) -> None:
        if self._updating or self.annotations is None:
            return
        selected = self.annotations.selected()
        if len(selected) == 1 and selected[0].note != self.note_edit.toPlainText():
            self.annotations.set_note(selected[0].id, self.note_edit.toPlainText())

    def show_tool(self, tool_id: str) -> None:
        """Reflect the canvas's active tool in the buttons."""
        button = self.tool_buttons.get(tool_id)
        if button is not None:
            button.setChecked(True)
